// snn_conv_rows: a full-width spike-driven (or analog first-layer) 2-D convolution that
// takes E input channels a cycle, as snn_conv computes it,
//   out[oy, ox, :] = sum over taps (ky, kx) and channels c of s[iy, ix, c] W[:, c, ky, kx].
//
// Every output position visits its KH*KW kernel taps in order, a slot of S = max(NG, IG)
// cycles each (NG = C/E channel groups; IG the port's cycles between requests): a tap
// inside the input requests its input row (iy, ix) in the slot's first cycle (a padding
// tap requests nothing), so the rows stream in, one every S cycles, whatever the spikes.
// ILAT cycles later (the port's latency) the row arrives and is kept (a padding tap's
// row is zeros); in the next NG cycles the weight words {tap, group g} of the ROM are
// read (word (ky*KW + kx)*NG + g = the weight rows W[:, c, ky, kx] of the group's E
// channels c = g*E .. g*E + E - 1, channel e's O weights at lanes e*O ..), and a cycle
// later each is added: per output lane a balanced adder tree of the E terms (a weight
// ANDed with its spike; analog: code times weight, E multipliers a lane) and the
// accumulator (zero at the position's first group). The position's sum is written the
// cycle after its last group's addition. No state depends on the spikes, so a run takes
//   OH*OW*KH*KW*S + ILAT + NG + 2 cycles from its start to its done.
// Which input row a tap reads comes from the tap tables of snn_conv:
//   TY[oy*KH + ky] = {valid, iy*W},  TX[ox*KW + kx] = {valid, ix}   (input width W).
// Unit spikes (WIN = 1) or analog codes (ANALOG = 1, WIN bits); WO > WW (and WIN + 1).
// A dense layer at full width is the same engine as a 1x1 convolution over R = OH rows.
module snn_conv_rows #(
    parameter C         = 1,   // input rows are (y, x), C channels each
    parameter OH        = 8,   // output rows are (oy, ox), O channels each
    parameter OW        = 8,
    parameter O         = 4,
    parameter KH        = 3,
    parameter KW        = 3,
    parameter IRW       = 6,   // input row bits
    parameter ORW       = 6,   // output row bits
    parameter TYW       = 5,   // TY address bits
    parameter TXW       = 5,   // TX address bits
    parameter SW        = 2,   // tap counter bits (holds KH - 1, KW - 1)
    parameter WIN       = 1,   // input width: 1 for spikes, the code width if ANALOG
    parameter ANALOG    = 0,
    parameter IN_SIGNED = 0,
    parameter WW        = 8,
    parameter WO        = 16,
    parameter W_FILE    = "w.hex",   // word tap*NG + g = {W[O-1, g*E+E-1, tap], .., W[0, g*E, tap]}
    parameter TY_FILE   = "ty.hex",
    parameter TX_FILE   = "tx.hex",
    parameter E         = 1,   // input channels a cycle (C / E = NG, a power of two)
    parameter NG        = 1,   // channel groups of a row
    parameter GB        = 1,   // group bits (holds NG - 1; 1 when NG = 1)
    parameter TB        = 4,   // tap index bits (holds KH*KW - 1)
    parameter AW        = 4,   // weight word bits (holds KH*KW*NG - 1)
    parameter LT        = 1,   // adder tree levels (E <= 2^LT)
    parameter IG        = 1,   // the port's cycles between requests
    parameter ILAT      = 1,   // ... and from a request to its row
    parameter SB        = 1,   // slot cycle bits (holds max(NG, IG) - 1)
    parameter LB        = 1    // latency counter bits (holds ILAT)
) (
    input  wire             clk,
    input  wire             rst,
    input  wire             start,
    output reg              done,
    output wire             in_req,
    output wire [IRW-1:0]   in_row,
    input  wire             in_ack,
    input  wire [C*WIN-1:0] in_data,
    output reg              out_we,
    output reg  [ORW-1:0]   out_waddr,
    output wire [O*WO-1:0]  out_wdata
);
    localparam integer S = (NG > IG) ? NG : IG;       // cycles a tap
    localparam integer S_LAST_I = S - 1;
    localparam [SB-1:0] S_LAST = S_LAST_I[SB-1:0];
    localparam integer G_LAST_I = NG - 1;
    localparam [SB-1:0] G_END = G_LAST_I[SB-1:0];
    localparam integer TAP_LAST_I = KH * KW - 1;
    localparam [TB-1:0] TAP_LAST = TAP_LAST_I[TB-1:0];
    localparam integer OUT_LAST_I = OH * OW - 1;
    localparam [ORW-1:0] OUT_LAST = OUT_LAST_I[ORW-1:0];
    localparam integer OX_STEP_I = KW;
    localparam [TXW-1:0] OX_STEP = OX_STEP_I[TXW-1:0];
    localparam integer OX_LAST_I = (OW - 1) * KW;
    localparam [TXW-1:0] OX_LAST = OX_LAST_I[TXW-1:0];
    localparam integer OY_STEP_I = KH;
    localparam [TYW-1:0] OY_STEP = OY_STEP_I[TYW-1:0];
    localparam integer KH_LAST_I = KH - 1;
    localparam [SW-1:0] KH_LAST = KH_LAST_I[SW-1:0];
    localparam integer KW_LAST_I = KW - 1;
    localparam [SW-1:0] KW_LAST = KW_LAST_I[SW-1:0];
    localparam integer ILAT_I = ILAT;
    localparam [LB-1:0] LAT = ILAT_I[LB-1:0];
    localparam integer NT = 1 << LT;                   // tree leaves (E, padded)
    localparam integer GW = E * WIN;                   // bits of a group's inputs

    // the front: requests the taps' rows, a slot of S cycles a tap
    reg            front;
    reg [ORW-1:0]  fpix;
    reg [TYW-1:0]  oyb;        // oy * KH
    reg [TXW-1:0]  oxb;        // ox * KW
    reg [SW-1:0]   ky;
    reg [SW-1:0]   kx;
    reg [TYW-1:0]  ty_a;
    reg [TXW-1:0]  tx_a;
    reg [SB-1:0]   fsub;
    reg [LB-1:0]   lag;        // cycles until the back's first slot (0: none pending)
    // the back: the same slots ILAT cycles later, as the rows arrive
    reg            back;
    reg [ORW-1:0]  bpix;
    reg [TB-1:0]   btap;
    reg [SB-1:0]   bsub;
    reg [C*WIN-1:0] row_q;     // the arrived row (groups shifted down as they are added)
    // the adder stage: the group whose weights arrive this cycle
    reg            add_en;
    reg            add_first;  // the position's first group: the accumulator restarts
    reg            add_last;   // ... its last: the sum is written next cycle
    reg [ORW-1:0]  add_pix;
    reg [O*WO-1:0] acc;
    reg [O*WO-1:0] sum;

    wire [IRW:0]     ty;       // {valid, iy*W}
    wire [IRW:0]     tx;       // {valid, ix}
    wire [E*O*WW-1:0] w_row;   // the weights of a group's E channels
    wire             f_last_tap = ky == KH_LAST && kx == KW_LAST;
    wire             f_end = fsub == S_LAST;
    wire             b_end = bsub == S_LAST;
    wire             reading;  // the back reads a group's weights this cycle
    wire [AW-1:0]    w_addr;

    snn_lut #(.WIDTH(IRW + 1), .DEPTH(OH * KH), .AW(TYW), .FILE(TY_FILE)) u_ty (
        .addr(ty_a), .data(ty));
    snn_lut #(.WIDTH(IRW + 1), .DEPTH(OW * KW), .AW(TXW), .FILE(TX_FILE)) u_tx (
        .addr(tx_a), .data(tx));
    snn_rom #(.WIDTH(E * O * WW), .DEPTH(KH * KW * NG), .AW(AW), .FILE(W_FILE)) u_w (
        .clk(clk), .re(reading), .raddr(w_addr), .rdata(w_row));

    generate
        if (NG >= IG) begin : g_dense_slots  // every cycle of a slot reads a group
            assign reading = back;
        end else begin : g_sparse_slots
            assign reading = back && bsub <= G_END;
        end
        if (NG > 1 && KH * KW == 1) begin : g_groups_only
            assign w_addr = bsub[GB-1:0];
        end else if (NG > 1) begin : g_groups
            assign w_addr = {btap, bsub[GB-1:0]};
        end else begin : g_one_group
            assign w_addr = btap;
        end
    endgenerate

    assign in_req = front && fsub == {SB{1'b0}} && ty[IRW] && tx[IRW];
    assign in_row = ty[IRW-1:0] + tx[IRW-1:0];
    assign out_wdata = acc;  // written the cycle after the position's last addition

    // Lane datapaths as loops in combinational blocks (see snn_neuron): per output lane,
    // the group's E terms and a balanced tree whose nodes overwrite the level below.
    reg [NT*WO-1:0] tree;
    reg [WO-1:0]    w_w;
    reg [WO-1:0]    code_w;
    integer m;
    integer j;
    integer s;
    integer i;

    always @* begin
        for (m = 0; m < O; m = m + 1) begin
            tree = {NT*WO{1'b0}};
            for (j = 0; j < E; j = j + 1) begin
                w_w = {{(WO-WW){w_row[(j*O+m)*WW+WW-1]}}, w_row[(j*O+m)*WW +: WW]};
                if (ANALOG != 0) begin
                    // the analog first layer: code * weight (the one place that multiplies)
                    code_w = {{(WO-WIN){IN_SIGNED != 0 && row_q[j*WIN+WIN-1]}},
                              row_q[j*WIN +: WIN]};
                    tree[j*WO +: WO] = code_w * w_w;
                end else begin
                    code_w = {WO{1'b0}};
                    tree[j*WO +: WO] = w_w & {WO{row_q[j]}};
                end
            end
            for (s = 0; s < LT; s = s + 1)
                for (i = 0; i < (NT >> (s + 1)); i = i + 1)
                    tree[i*WO +: WO] = tree[2*i*WO +: WO] + tree[(2*i+1)*WO +: WO];
            sum[m*WO +: WO] = (add_first ? {WO{1'b0}} : acc[m*WO +: WO]) + tree[WO-1:0];
        end
    end

    // the clocked blocks run only while there is something to do (an idle engine costs
    // an event-driven simulator nothing)
    wire wake = rst | start | done | front | back | add_en | out_we | (lag != {LB{1'b0}});

    always @(posedge clk) if (wake) begin
        if (rst) begin
            front <= 1'b0;
            back <= 1'b0;
            lag <= {LB{1'b0}};
            add_en <= 1'b0;
            out_we <= 1'b0;
            done <= 1'b0;
        end else begin
            done <= out_we && out_waddr == OUT_LAST;
            out_we <= add_en && add_last;
            out_waddr <= add_pix;
            if (add_en) acc <= sum;
            // the adder stage follows the back's reads by a cycle
            add_en <= reading;
            add_first <= btap == {TB{1'b0}} && bsub == {SB{1'b0}};
            add_last <= btap == TAP_LAST && bsub == G_END;
            add_pix <= bpix;
            // the front
            if (start && !front) begin
                front <= 1'b1;
                lag <= LAT;
                fpix <= {ORW{1'b0}};
                fsub <= {SB{1'b0}};
                oyb <= {TYW{1'b0}};
                oxb <= {TXW{1'b0}};
                ty_a <= {TYW{1'b0}};
                tx_a <= {TXW{1'b0}};
                ky <= {SW{1'b0}};
                kx <= {SW{1'b0}};
            end else if (front) begin
                fsub <= f_end ? {SB{1'b0}} : fsub + 1'b1;
                if (f_end) next_tap();
            end
            if (lag != {LB{1'b0}}) begin
                lag <= lag - 1'b1;
                if (lag == {{(LB-1){1'b0}}, 1'b1}) begin
                    back <= 1'b1;
                    bpix <= {ORW{1'b0}};
                    btap <= {TB{1'b0}};
                    bsub <= {SB{1'b0}};
                end
            end
            // the back: keep the arriving row (zeros for a padding tap), then shift its
            // groups down as they are added
            if (back) begin
                if (bsub == {SB{1'b0}}) row_q <= in_ack ? in_data : {C*WIN{1'b0}};
                else if (NG > 1) row_q <= row_q >> GW;
                bsub <= b_end ? {SB{1'b0}} : bsub + 1'b1;
                if (b_end) begin
                    btap <= btap == TAP_LAST ? {TB{1'b0}} : btap + 1'b1;
                    if (btap == TAP_LAST) begin
                        bpix <= bpix + 1'b1;
                        if (bpix == OUT_LAST) back <= 1'b0;
                    end
                end
            end
        end
    end

    // the front's next tap (or the next position's first, or the end)
    task next_tap;
        begin
            if (f_last_tap) begin
                ky <= {SW{1'b0}};
                kx <= {SW{1'b0}};
                if (fpix == OUT_LAST) begin
                    front <= 1'b0;
                end else begin
                    fpix <= fpix + 1'b1;
                    if (oxb == OX_LAST) begin
                        oxb <= {TXW{1'b0}};
                        tx_a <= {TXW{1'b0}};
                        oyb <= oyb + OY_STEP;
                        ty_a <= oyb + OY_STEP;
                    end else begin
                        oxb <= oxb + OX_STEP;
                        tx_a <= oxb + OX_STEP;
                        ty_a <= oyb;
                    end
                end
            end else if (kx == KW_LAST) begin
                kx <= {SW{1'b0}};
                tx_a <= oxb;
                ky <= ky + 1'b1;
                ty_a <= ty_a + 1'b1;
            end else begin
                kx <= kx + 1'b1;
                tx_a <= tx_a + 1'b1;
            end
        end
    endtask
endmodule
