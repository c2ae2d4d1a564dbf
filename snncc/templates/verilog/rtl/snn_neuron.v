// snn_neuron: an array of N delayed integrate-and-fire (DIF) neurons, one per cycle.
//
// Per time step, for every neuron i (a 3-stage pipeline, N + 3 cycles):
//   v[i] += I[i]                                  (I is zero when in_valid is low)
//   if fire_en and n[i] < L and sign*v[i] >= theta[row(i), min(n[i], L-1)]:
//       spike[i] = 1, n[i] += 1                   (at most one spike per step)
// fire_en comes from the schedule: the step is at or after the firing delay t_fire.
// sign is a conditional negation (a flag in the threshold table), never a multiply.
// Threshold tables are shared: row(i) = (i / INNER) % ROWS; the table is addressed by
// {row, level} (2**LB slots per row).
// On the first run of an inference (first = 1) the stored v and n read as zero, so no
// clearing pass is needed. The spike counts n[] can be read back through dbg_* when idle.
module snn_neuron #(
    parameter N       = 16,    // neurons
    parameter AW      = 4,     // neuron index bits
    parameter WI      = 8,     // input current width (two's complement)
    parameter WV      = 12,    // membrane width
    parameter WC      = 13,    // comparison width: holds +-v and every threshold
    parameter L       = 7,     // levels: most spikes per neuron and inference
    parameter NB      = 3,     // spike count bits (holds L)
    parameter LB      = 3,     // level bits (holds L - 1)
    parameter ROWS    = 1,     // threshold table rows
    parameter RB      = 1,     // row bits (holds ROWS - 1)
    parameter INNER   = 16,    // consecutive neurons sharing one row
    parameter IB      = 4,     // bits of the INNER counter (holds INNER - 1)
    parameter TH_FILE = "th.hex"  // {negate, theta[WC]} at {row, level}
) (
    input  wire          clk,
    input  wire          rst,
    input  wire          start,
    input  wire          clear,     // a new inference begins: forget the stored state
    input  wire          in_valid,
    input  wire          fire_en,
    output reg           busy,
    output reg           done,
    // input current (buffer read port, one cycle latency)
    output wire [AW-1:0] in_addr,
    input  wire [WI-1:0] in_data,
    // output spikes (buffer write port)
    output wire          out_we,
    output wire [AW-1:0] out_waddr,
    output wire          out_wdata,
    // spike count read-back while idle (one cycle latency)
    input  wire [AW-1:0] dbg_addr,
    output wire [NB-1:0] dbg_count
);
    // no run yet in this inference: the stored state reads as zero (a lazy reset)
    reg first;

    always @(posedge clk) begin
        if (rst || clear) first <= 1'b1;
        else if (done) first <= 1'b0;
    end

    localparam integer LAST_I = N - 1;
    localparam [AW-1:0] LAST = LAST_I[AW-1:0];
    localparam integer INNER_LAST_I = INNER - 1;
    localparam [IB-1:0] INNER_LAST = INNER_LAST_I[IB-1:0];
    localparam integer ROW_LAST_I = ROWS - 1;
    localparam [RB-1:0] ROW_LAST = ROW_LAST_I[RB-1:0];
    localparam integer LEVELS_I = L;
    localparam [NB-1:0] LEVELS = LEVELS_I[NB-1:0];
    localparam integer TOP_NB_I = L - 1;
    localparam [NB-1:0] TOP_NB = TOP_NB_I[NB-1:0];
    localparam integer TOP_LEVEL_I = L - 1;
    localparam [LB-1:0] TOP_LEVEL = TOP_LEVEL_I[LB-1:0];

    // stage 0: issue reads of I[i], v[i], n[i]
    reg           issuing;
    reg [AW-1:0]  i0;
    reg [IB-1:0]  inner0;
    reg [RB-1:0]  row0;
    // stage 1: integrate, look up the threshold of the next level
    reg           s1;
    reg [AW-1:0]  i1;
    reg [RB-1:0]  row1;
    // stage 2: compare and fire
    reg           s2;
    reg [AW-1:0]  i2;
    reg [WV-1:0]  v2;
    reg [NB-1:0]  n2;

    wire [WV-1:0] v_rdata;
    wire [NB-1:0] n_rdata;
    wire [WC:0]   th_rdata;   // {negate, theta}

    // stage 1 datapath
    wire [WV-1:0]  current;
    wire [WV-1:0]  v_old   = first ? {WV{1'b0}} : v_rdata;
    wire [WV-1:0]  v_new   = v_old + (in_valid ? current : {WV{1'b0}});
    wire [NB-1:0]  n_old   = first ? {NB{1'b0}} : n_rdata;
    wire [LB-1:0]  level   = (n_old > TOP_NB) ? TOP_LEVEL : n_old[LB-1:0];

    // stage 2 datapath: sign * v >= theta, sign as a conditional negation
    wire [WC-1:0] v_wide;
    wire [WC-1:0] signed_v = th_rdata[WC] ? (~v_wide + 1'b1) : v_wide;
    wire          reached  = $signed(signed_v) >= $signed(th_rdata[WC-1:0]);
    wire          fire     = fire_en && (n2 < LEVELS) && reached;
    wire [NB-1:0] fire_w;

    snn_sext #(.WI(WI), .WO(WV)) u_current (.x(in_data), .y(current));
    snn_sext #(.WI(WV), .WO(WC)) u_vwide (.x(v2), .y(v_wide));
    snn_zext #(.WI(1), .WO(NB)) u_fire (.x(fire), .y(fire_w));

    snn_ram #(.WIDTH(WV), .DEPTH(N), .AW(AW)) u_v (
        .clk(clk), .we(s2), .waddr(i2), .wdata(v2), .raddr(i0), .rdata(v_rdata));
    snn_ram #(.WIDTH(NB), .DEPTH(N), .AW(AW)) u_n (
        .clk(clk), .we(s2), .waddr(i2), .wdata(n2 + fire_w),
        .raddr(busy ? i0 : dbg_addr), .rdata(n_rdata));
    snn_rom #(.WIDTH(WC + 1), .DEPTH(1 << (RB + LB)), .AW(RB + LB), .FILE(TH_FILE)) u_th (
        .clk(clk), .raddr({row1, level}), .rdata(th_rdata));

    assign in_addr   = i0;
    assign out_we    = s2;
    assign out_waddr  = i2;
    assign out_wdata  = fire;
    assign dbg_count = n_rdata;

    always @(posedge clk) begin
        if (rst) begin
            busy <= 1'b0;
            done <= 1'b0;
            issuing <= 1'b0;
            s1 <= 1'b0;
            s2 <= 1'b0;
        end else begin
            done <= 1'b0;
            if (start) begin
                busy <= 1'b1;
                issuing <= 1'b1;
                i0 <= {AW{1'b0}};
                inner0 <= {IB{1'b0}};
                row0 <= {RB{1'b0}};
            end
            // stage 0
            s1 <= issuing;
            i1 <= i0;
            row1 <= row0;
            if (issuing) begin
                if (i0 == LAST) issuing <= 1'b0;
                i0 <= i0 + 1'b1;
                if (inner0 == INNER_LAST) begin
                    inner0 <= {IB{1'b0}};
                    row0 <= (row0 == ROW_LAST) ? {RB{1'b0}} : row0 + 1'b1;
                end else begin
                    inner0 <= inner0 + 1'b1;
                end
            end
            // stage 1
            s2 <= s1;
            i2 <= i1;
            v2 <= v_new;
            n2 <= n_old;
            // stage 2: the writes happen combinationally from the stage-2 registers
            if (s2 && i2 == LAST) begin
                busy <= 1'b0;
                done <= 1'b1;
            end
        end
    end
endmodule
