// snn_gather_sum: out[j] = sum over q < Q of in[G[j*Q + q]], for ReduceSum (mean before
// its 1/n is folded) and SumPool (average pooling), of spikes or currents. The gather
// table G = {valid, address} is computed by the compiler; padding entries are invalid
// and read as zero. One input per cycle: NOUT*Q + 2 cycles.
module snn_gather_sum #(
    parameter NOUT      = 10,
    parameter Q         = 8,      // inputs summed into each output
    parameter AWI       = 7,      // input address bits
    parameter AWO       = 4,      // output index bits (NOUT entries)
    parameter AWG       = 7,      // gather table address bits (NOUT*Q entries)
    parameter QW        = 3,      // tap counter bits (holds Q-1)
    parameter WI        = 8,
    parameter IN_SIGNED = 1,      // currents are signed, spikes are not
    parameter WO        = 12,
    parameter G_FILE    = "g.hex"
) (
    input  wire           clk,
    input  wire           rst,
    input  wire           start,
    output reg            busy,
    output reg            done,
    output wire [AWI-1:0] in_addr,
    input  wire [WI-1:0]  in_data,
    output wire           out_we,
    output wire [AWO-1:0] out_waddr,
    output wire [WO-1:0]  out_wdata
);
    localparam integer G_LAST_I = NOUT * Q - 1;
    localparam [AWG-1:0] G_LAST = G_LAST_I[AWG-1:0];
    localparam integer Q_LAST_I = Q - 1;
    localparam [QW-1:0] Q_LAST = Q_LAST_I[QW-1:0];

    reg           issuing;
    reg [AWG-1:0] g;
    reg [QW-1:0]  tap;
    reg [AWO-1:0] j;
    reg           q;
    reg           q_first;
    reg           q_last;
    reg           q_valid;
    reg [AWO-1:0] q_j;
    reg [WO-1:0]  acc;

    wire [AWI:0]  entry;      // {valid, address}
    wire [WO-1:0] in_ext;
    wire [WO-1:0] term = q_valid ? in_ext : {WO{1'b0}};
    wire [WO-1:0] sum  = (q_first ? {WO{1'b0}} : acc) + term;

    generate
        if (IN_SIGNED) begin : g_signed
            snn_sext #(.WI(WI), .WO(WO)) u_ext (.x(in_data), .y(in_ext));
        end else begin : g_unsigned
            snn_zext #(.WI(WI), .WO(WO)) u_ext (.x(in_data), .y(in_ext));
        end
    endgenerate

    snn_lut #(.WIDTH(AWI + 1), .DEPTH(NOUT * Q), .AW(AWG), .FILE(G_FILE)) u_g (
        .addr(g), .data(entry));

    assign in_addr  = entry[AWI-1:0];
    assign out_we   = q && q_last;
    assign out_waddr = q_j;
    assign out_wdata = sum;

    always @(posedge clk) begin
        if (rst) begin
            busy <= 1'b0;
            done <= 1'b0;
            issuing <= 1'b0;
            q <= 1'b0;
        end else begin
            done <= 1'b0;
            if (start) begin
                busy <= 1'b1;
                issuing <= 1'b1;
                g <= {AWG{1'b0}};
                tap <= {QW{1'b0}};
                j <= {AWO{1'b0}};
            end
            q <= issuing;
            q_first <= tap == {QW{1'b0}};
            q_last <= tap == Q_LAST;
            q_valid <= entry[AWI];
            q_j <= j;
            if (issuing) begin
                g <= g + 1'b1;
                if (g == G_LAST) issuing <= 1'b0;
                if (tap == Q_LAST) begin
                    tap <= {QW{1'b0}};
                    j <= j + 1'b1;
                end else begin
                    tap <= tap + 1'b1;
                end
            end
            if (q) acc <= sum;
            if (q && !issuing && q_last) begin
                busy <= 1'b0;
                done <= 1'b1;
            end
        end
    end
endmodule
