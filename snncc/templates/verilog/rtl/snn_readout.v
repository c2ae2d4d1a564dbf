// snn_readout: accumulates its input current, acc[i] += I[i]; the integer logits are
// acc + bias (the argmax is taken over them). On the first run of an inference the
// stored accumulators read as zero. After the run the logits are read through rd_*.
module snn_readout #(
    parameter N      = 10,
    parameter AW     = 4,     // index bits (N entries)
    parameter WI     = 12,    // input current width
    parameter WA     = 16,    // accumulator width
    parameter WB     = 8,     // bias width
    parameter WL     = 17,    // logit width
    parameter B_FILE = "bias.hex"
) (
    input  wire          clk,
    input  wire          rst,
    input  wire          start,
    input  wire          clear,     // a new inference begins: forget the stored state
    output reg           busy,
    output reg           done,
    output wire [AW-1:0] in_addr,
    input  wire [WI-1:0] in_data,
    // logit read port, one cycle latency, while idle
    input  wire [AW-1:0] rd_addr,
    output wire [WL-1:0] rd_logit
);
    // no run yet in this inference: the stored state reads as zero (a lazy reset)
    reg first;

    always @(posedge clk) begin
        if (rst || clear) first <= 1'b1;
        else if (done) first <= 1'b0;
    end

    localparam integer LAST_I = N - 1;
    localparam [AW-1:0] LAST = LAST_I[AW-1:0];

    reg          issuing;
    reg [AW-1:0] i0;
    reg          s1;
    reg [AW-1:0] i1;

    wire [WA-1:0] acc_rdata;
    wire [WB-1:0] bias_rdata;
    wire [WA-1:0] in_ext;
    wire [WL-1:0] acc_ext;
    wire [WL-1:0] bias_ext;
    wire [WA-1:0] acc_next = (first ? {WA{1'b0}} : acc_rdata) + in_ext;

    snn_sext #(.WI(WI), .WO(WA)) u_in (.x(in_data), .y(in_ext));
    snn_sext #(.WI(WA), .WO(WL)) u_acc (.x(acc_rdata), .y(acc_ext));
    snn_sext #(.WI(WB), .WO(WL)) u_bias (.x(bias_rdata), .y(bias_ext));

    snn_ram #(.WIDTH(WA), .DEPTH(N), .AW(AW)) u_acc_ram (
        .clk(clk), .we(s1), .waddr(i1), .wdata(acc_next),
        .raddr(busy ? i0 : rd_addr), .rdata(acc_rdata));
    snn_rom #(.WIDTH(WB), .DEPTH(N), .AW(AW), .FILE(B_FILE)) u_bias_rom (
        .clk(clk), .raddr(rd_addr), .rdata(bias_rdata));

    assign in_addr  = i0;
    assign rd_logit = acc_ext + bias_ext;

    always @(posedge clk) begin
        if (rst) begin
            busy <= 1'b0;
            done <= 1'b0;
            issuing <= 1'b0;
            s1 <= 1'b0;
        end else begin
            done <= 1'b0;
            if (start) begin
                busy <= 1'b1;
                issuing <= 1'b1;
                i0 <= {AW{1'b0}};
            end
            s1 <= issuing;
            i1 <= i0;
            if (issuing) begin
                i0 <= i0 + 1'b1;
                if (i0 == LAST) issuing <= 1'b0;
            end
            if (s1 && i1 == LAST) begin
                busy <= 1'b0;
                done <= 1'b1;
            end
        end
    end
endmodule
