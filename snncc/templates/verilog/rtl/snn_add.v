// snn_add: the residual stream, out[r, :] = a[r, :] + b[r, :] (currents of two branches,
// all D lanes at once). A silent input (its valid flag low this step) reads as zero and
// is not fetched; the two inputs are read one after the other, so they may share a
// buffer.
module snn_add #(
    parameter R  = 16,
    parameter D  = 8,
    parameter RW = 4,
    parameter WA = 8,
    parameter WB = 8,
    parameter WO = 9
) (
    input  wire            clk,
    input  wire            rst,
    input  wire            start,
    input  wire            a_valid,
    input  wire            b_valid,
    output reg             done,
    output reg             a_req,
    output wire [RW-1:0]   a_row,
    input  wire            a_ack,
    input  wire [D*WA-1:0] a_data,
    output reg             b_req,
    output wire [RW-1:0]   b_row,
    input  wire            b_ack,
    input  wire [D*WB-1:0] b_data,
    output wire            out_we,
    output wire [RW-1:0]   out_waddr,
    output wire [D*WO-1:0] out_wdata
);
    localparam [1:0] S_IDLE = 2'd0, S_A = 2'd1, S_B = 2'd2;
    localparam integer LAST_I = R - 1;
    localparam [RW-1:0] LAST = LAST_I[RW-1:0];

    reg [1:0]      state;
    reg            waiting;
    reg [RW-1:0]   r;
    reg [D*WO-1:0] a_row_q;    // a[r], extended

    wire a_ready = state == S_A && (a_ack || (!a_valid && !waiting));
    wire b_ready = state == S_B && (b_ack || (!b_valid && !waiting));

    // Lane datapaths as loops in a combinational block (see snn_neuron). WO > WA, WB.
    reg [D*WO-1:0] a_ext;
    reg [D*WO-1:0] sum;
    integer l;

    always @* begin
        for (l = 0; l < D; l = l + 1) begin
            a_ext[l*WO +: WO] = a_valid
                ? {{(WO-WA){a_data[l*WA+WA-1]}}, a_data[l*WA +: WA]} : {WO{1'b0}};
            sum[l*WO +: WO] = a_row_q[l*WO +: WO]
                + (b_valid ? {{(WO-WB){b_data[l*WB+WB-1]}}, b_data[l*WB +: WB]} : {WO{1'b0}});
        end
    end

    assign a_row     = r;
    assign b_row     = r;
    assign out_we    = b_ready;
    assign out_waddr = r;
    assign out_wdata = sum;

    // the FSM's clocked block runs only while there is something to do (an idle engine
    // costs an event-driven simulator nothing)
    wire wake = rst | start | done | (state != S_IDLE);

    always @(posedge clk) if (wake) begin
        if (rst) begin
            state <= S_IDLE;
            done <= 1'b0;
            waiting <= 1'b0;
            a_req <= 1'b0;
            b_req <= 1'b0;
        end else begin
            done <= 1'b0;
            a_req <= 1'b0;
            b_req <= 1'b0;
            case (state)
                S_IDLE: if (start) begin
                    r <= {RW{1'b0}};
                    state <= S_A;
                    a_req <= a_valid;
                    waiting <= a_valid;
                end
                S_A: if (a_ready) begin
                    a_row_q <= a_valid ? a_ext : {D*WO{1'b0}};
                    state <= S_B;
                    b_req <= b_valid;
                    waiting <= b_valid;
                end
                S_B: if (b_ready) begin
                    if (r == LAST) begin
                        state <= S_IDLE;
                        done <= 1'b1;
                    end else begin
                        r <= r + 1'b1;
                        state <= S_A;
                        a_req <= a_valid;
                        waiting <= a_valid;
                    end
                end
                default: state <= S_IDLE;
            endcase
        end
    end
endmodule
