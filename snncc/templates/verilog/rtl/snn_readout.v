// snn_readout: accumulates its input current, acc[r, :] += I[r, :] (all D lanes at once);
// the integer logits are acc + bias (the argmax is taken over them). On the first run of
// an inference the stored accumulators read as zero (a lazy reset), and so do the logits'
// when no run came (every run skipped as silent). After the run, logit (rd_row, rd_lane)
// is read through rd_* with one cycle latency.
module snn_readout #(
    parameter R      = 1,
    parameter D      = 10,
    parameter RW     = 1,     // row bits
    parameter LW     = 4,     // lane bits (holds D - 1)
    parameter WI     = 12,    // input current width
    parameter WA     = 16,    // accumulator width
    parameter WB     = 8,     // bias width
    parameter WL     = 17,    // logit width
    parameter B_FILE = "bias.hex"  // row r = {bias[r, D-1], .., bias[r, 0]}
) (
    input  wire            clk,
    input  wire            rst,
    input  wire            start,
    input  wire            clear,     // a new inference begins: forget the stored state
    output reg             done,
    output reg             in_req,
    output wire [RW-1:0]   in_row,
    input  wire            in_ack,
    input  wire [D*WI-1:0] in_data,
    input  wire [RW-1:0]   rd_row,
    input  wire [LW-1:0]   rd_lane,
    output wire [WL-1:0]   rd_logit
);
    reg busy;   // between start and done
    localparam integer LAST_I = R - 1;
    localparam [RW-1:0] LAST = LAST_I[RW-1:0];

    // no run yet in this inference: the stored state reads as zero (a lazy reset)
    reg first;

    wire first_wake = rst | clear | done;

    always @(posedge clk) if (first_wake) first <= rst | clear;

    reg [RW-1:0] r;

    wire [D*WA-1:0] acc_rdata;
    wire [D*WB-1:0] bias_rdata;
    wire [WA-1:0]   acc_lane;
    wire [WB-1:0]   bias_lane;

    // Lane datapaths as loops in a combinational block (see snn_neuron). WA > WI,
    // WL > WA, WB.
    reg [D*WA-1:0] acc_next;
    integer l;

    always @* begin
        for (l = 0; l < D; l = l + 1)
            acc_next[l*WA +: WA] = (first ? {WA{1'b0}} : acc_rdata[l*WA +: WA])
                + {{(WA-WI){in_data[l*WI+WI-1]}}, in_data[l*WI +: WI]};
    end

    // the input row arrives one cycle after the accumulator row was addressed
    snn_ram #(.WIDTH(D * WA), .DEPTH(R), .AW(RW)) u_acc (
        .clk(clk), .we(in_ack), .waddr(r), .wdata(acc_next),
        .re(1'b1), .raddr(busy ? r : rd_row), .rdata(acc_rdata));
    snn_rom #(.WIDTH(D * WB), .DEPTH(R), .AW(RW), .FILE(B_FILE)) u_bias (
        .clk(clk), .re(1'b1), .raddr(rd_row), .rdata(bias_rdata));
    snn_lane_mux #(.N(D), .W(WA), .IW(LW)) u_acc_lane (
        .row(acc_rdata), .index(rd_lane), .lane(acc_lane));
    snn_lane_mux #(.N(D), .W(WB), .IW(LW)) u_bias_lane (
        .row(bias_rdata), .index(rd_lane), .lane(bias_lane));

    assign in_row   = r;
    wire [WA-1:0]   acc_seen = first ? {WA{1'b0}} : acc_lane;
    assign rd_logit = {{(WL-WA){acc_seen[WA-1]}}, acc_seen} + {{(WL-WB){bias_lane[WB-1]}}, bias_lane};

    // the FSM's clocked block runs only while there is something to do (an idle engine
    // costs an event-driven simulator nothing)
    wire wake = rst | start | done | (busy);

    always @(posedge clk) if (wake) begin
        if (rst) begin
            busy <= 1'b0;
            done <= 1'b0;
            in_req <= 1'b0;
        end else begin
            done <= 1'b0;
            in_req <= 1'b0;
            if (start) begin
                busy <= 1'b1;
                in_req <= 1'b1;
                r <= {RW{1'b0}};
            end else if (in_ack) begin
                // row r is accumulated in this cycle
                if (r == LAST) begin
                    busy <= 1'b0;
                    done <= 1'b1;
                end else begin
                    r <= r + 1'b1;
                    in_req <= 1'b1;
                end
            end
        end
    end
endmodule
