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
//   (OH*OW*KH*KW - 1)*S + ILAT + NG + 3 cycles from its start to its done.
// WALK = 1 (an identity port: a row one cycle after its request) skips the silent groups
// instead: a tap takes one cycle per group with a non-zero input (one when there is none),
// and the next tap's row is requested in the walk's last cycle, so it arrives as the walk
// ends; a run then takes the sum of its taps' cycles + 4 from its start to its done. It
// walks only the taps inside the input: the rows ky and columns kx of a position's
// window between the ranges of its tables RY[oy] = {kylo*KW, kylo, kylo, kyhi} and
// RX[ox] = {KW - (kxhi - kxlo), kxlo, kxlo, kxlo, kxhi} (a field a width it is added
// at; (0, 0) when all are padding: that window's tap 0, padding, a cycle), so a padding
// tap costs nothing. With E = 1 this is the event engine of snn_conv (one spike a cycle)
// without its per-tap request and wait cycles, and without an adder tree. V > 1 (WALK
// only) walks V non-silent groups a cycle: the row's V lowest, each found by a priority
// encoder after the ones below it are cleared, their weight words read from V copies of
// the ROM, and per output lane a tree of the V*E terms: a tap then takes
// ceil(non-silent groups / V) cycles (one when there is none). A tap's row
// is requested only once in_avail > its row: a producer writing the input buffer in the
// same step (started together, one at a time) says how many rows it has written so far;
// otherwise in_avail is above every row (the fixed slots ignore it).
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
    parameter RY_FILE   = "ry.hex",  // WALK: the valid taps' range of a window row
    parameter RX_FILE   = "rx.hex",  // ... and column
    parameter YB        = 1,   // WALK: output row bits (holds OH - 1)
    parameter XB        = 1,   // ... and column bits (holds OW - 1)
    parameter E         = 1,   // input channels a cycle (C / E = NG, a power of two)
    parameter NG        = 1,   // channel groups of a row
    parameter GB        = 1,   // group bits (holds NG - 1; 1 when NG = 1)
    parameter TB        = 4,   // tap index bits (holds KH*KW - 1)
    parameter AW        = 4,   // weight word bits (holds KH*KW*NG - 1)
    parameter LT        = 1,   // adder tree levels (V*E <= 2^LT)
    parameter IG        = 1,   // the port's cycles between requests
    parameter ILAT      = 1,   // ... and from a request to its row
    parameter SB        = 1,   // slot cycle bits (holds max(NG, IG) - 1)
    parameter LB        = 1,   // latency counter bits (holds ILAT)
    parameter WALK      = 0,   // skip silent groups (ILAT = IG = 1 only)
    parameter V         = 1    // WALK: non-silent groups a cycle (V <= NG; 1 if fixed slots)
) (
    input  wire             clk,
    input  wire             rst,
    input  wire             start,
    output reg              done,
    output wire             in_req,
    output wire [IRW-1:0]   in_row,
    input  wire             in_ack,
    input  wire [C*WIN-1:0] in_data,
    input  wire [IRW:0]     in_avail,  // WALK: input rows that may be read (0..in_avail-1)
    output reg              out_we,
    output reg  [ORW-1:0]   out_waddr,
    output wire [O*WO-1:0]  out_wdata
);
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
    localparam integer NT = 1 << LT;                   // tree leaves (V*E, padded)
    localparam integer GW = E * WIN;                   // bits of a group's inputs
    localparam integer VE = V * E;                     // terms a lane a cycle
    localparam integer WB = E * O * WW;                // bits of a weight word

    // the front: requests the taps' rows (fixed slots: a slot of S cycles a tap; WALK:
    // a tap as the back's walk of the previous one ends)
    reg            front;
    reg [ORW-1:0]  fpix;
    reg [TYW-1:0]  oyb;        // oy * KH
    reg [TXW-1:0]  oxb;        // ox * KW
    reg [SW-1:0]   ky;
    reg [SW-1:0]   kx;
    reg [TYW-1:0]  ty_a;
    reg [TXW-1:0]  tx_a;
    // the back: the taps' rows as they arrive, and the reads of their groups' weights
    reg [ORW-1:0]  bpix;
    reg [TB-1:0]   btap;
    reg [C*WIN-1:0] row_q;     // the arrived row
    wire [V*GW-1:0] group_in;  // the inputs of the groups whose weights arrive (slot 0 low)
    wire           reading;    // the back reads groups' weights this cycle
    wire [V*GB-1:0] groups;    // ... of these groups, a slot each
    wire [V-1:0]   picked;     // ... the slots that hold a group (WALK)
    wire           group_first; // ... the tap's first
    wire           group_last;  // ... the tap's last
    wire           b_first;     // the back's tap is its position's first
    wire           b_last;      // ... its last
    // the adder stage: the groups whose weights arrive this cycle
    reg            add_en;
    reg [V*GB-1:0] add_g;
    reg [V-1:0]    add_v;
    reg            add_first;  // the position's first group: the accumulator restarts
    reg            add_last;   // ... its last: the sum is written next cycle
    reg [ORW-1:0]  add_pix;
    reg [O*WO-1:0] acc;
    reg [O*WO-1:0] sum;

    wire [IRW:0]     ty;       // {valid, iy*W}
    wire [IRW:0]     tx;       // {valid, ix}
    wire [V*WB-1:0]  w_row;    // the weights of the groups' E channels, a word a slot
    wire             f_last_tap = ky == KH_LAST && kx == KW_LAST;
    wire             f_valid = ty[IRW] && tx[IRW];

    snn_lut #(.WIDTH(IRW + 1), .DEPTH(OH * KH), .AW(TYW), .FILE(TY_FILE)) u_ty (
        .addr(ty_a), .data(ty));
    snn_lut #(.WIDTH(IRW + 1), .DEPTH(OW * KW), .AW(TXW), .FILE(TX_FILE)) u_tx (
        .addr(tx_a), .data(tx));
    // a copy of the weight ROM a slot
    genvar cv;

    generate
        for (cv = 0; cv < V; cv = cv + 1) begin : g_copy
            wire [AW-1:0] w_addr;

            if (NG > 1 && KH * KW == 1) begin : g_groups_only
                assign w_addr = groups[cv*GB +: GB];
            end else if (NG > 1) begin : g_groups
                assign w_addr = {btap, groups[cv*GB +: GB]};
            end else begin : g_one_group
                assign w_addr = btap;
            end
            snn_rom #(.WIDTH(WB), .DEPTH(KH * KW * NG), .AW(AW), .FILE(W_FILE)) u_w (
                .clk(clk), .re(reading), .raddr(w_addr), .rdata(w_row[cv*WB +: WB]));
        end
    endgenerate

    assign in_row = ty[IRW-1:0] + tx[IRW-1:0];
    assign out_wdata = acc;  // written the cycle after the position's last addition

    // Lane datapaths as loops in combinational blocks (see snn_neuron): per output lane,
    // the groups' V*E terms and a balanced tree whose nodes overwrite the level below.
    reg [NT*WO-1:0] tree;
    reg [WO-1:0]    w_w;
    integer m;
    integer j;
    integer s;
    integer i;

    generate
        if (ANALOG != 0) begin : g_analog
            // the analog first layer: code * weight (the one place that multiplies)
            reg [WO-1:0] code_w;

            always @* begin
                for (m = 0; m < O; m = m + 1) begin
                    tree = {NT*WO{1'b0}};
                    for (j = 0; j < VE; j = j + 1) begin
                        w_w = {{(WO-WW){w_row[(j*O+m)*WW+WW-1]}}, w_row[(j*O+m)*WW +: WW]};
                        code_w = {{(WO-WIN){IN_SIGNED != 0 && group_in[j*WIN+WIN-1]}},
                                  group_in[j*WIN +: WIN]};
                        tree[j*WO +: WO] = code_w * w_w;
                    end
                    for (s = 0; s < LT; s = s + 1)
                        for (i = 0; i < (NT >> (s + 1)); i = i + 1)
                            tree[i*WO +: WO] = tree[2*i*WO +: WO] + tree[(2*i+1)*WO +: WO];
                    sum[m*WO +: WO] = (add_first ? {WO{1'b0}} : acc[m*WO +: WO])
                        + tree[WO-1:0];
                end
            end
        end else begin : g_spikes
            // unit spikes: a spike selects its weight (an AND), no multiply
            always @* begin
                for (m = 0; m < O; m = m + 1) begin
                    tree = {NT*WO{1'b0}};
                    for (j = 0; j < VE; j = j + 1) begin
                        w_w = {{(WO-WW){w_row[(j*O+m)*WW+WW-1]}}, w_row[(j*O+m)*WW +: WW]};
                        tree[j*WO +: WO] = w_w & {WO{group_in[j]}};
                    end
                    for (s = 0; s < LT; s = s + 1)
                        for (i = 0; i < (NT >> (s + 1)); i = i + 1)
                            tree[i*WO +: WO] = tree[2*i*WO +: WO] + tree[(2*i+1)*WO +: WO];
                    sum[m*WO +: WO] = (add_first ? {WO{1'b0}} : acc[m*WO +: WO])
                        + tree[WO-1:0];
                end
            end
        end
    endgenerate

    // the clocked blocks run only while there is something to do (an idle engine costs
    // an event-driven simulator nothing)
    wire busy;
    wire wake = rst | start | done | busy | add_en | out_we;

    // the adder stage follows the back's reads by a cycle; the sum is written a cycle
    // after the position's last addition, and done follows the last position's write
    always @(posedge clk) if (wake) begin
        if (rst) begin
            add_en <= 1'b0;
            out_we <= 1'b0;
            done <= 1'b0;
        end else begin
            done <= out_we && out_waddr == OUT_LAST;
            out_we <= add_en && add_last;
            out_waddr <= add_pix;
            if (add_en) acc <= sum;
            add_en <= reading;
            add_g <= groups;
            add_v <= picked;
            add_first <= b_first && group_first;
            add_last <= b_last && group_last;
            add_pix <= bpix;
        end
    end

    generate
        if (WALK == 0) begin : g_slots
            // fixed slots: the front requests a tap's row in the first cycle of its slot;
            // the back follows ILAT cycles later, group g read in the slot's cycle g
            localparam integer S = (NG > IG) ? NG : IG;       // cycles a tap
            localparam integer S_LAST_I = S - 1;
            localparam [SB-1:0] S_LAST = S_LAST_I[SB-1:0];
            localparam integer G_LAST_I = NG - 1;
            localparam [SB-1:0] G_END = G_LAST_I[SB-1:0];
            localparam integer ILAT_I = ILAT;
            localparam [LB-1:0] LAT = ILAT_I[LB-1:0];

            reg          back;
            reg [SB-1:0] fsub;
            reg [SB-1:0] bsub;
            reg [LB-1:0] lag;        // cycles until the back's first slot (0: none pending)
            wire         f_end = fsub == S_LAST;
            wire         b_end = bsub == S_LAST;

            if (NG >= IG) begin : g_every  // every cycle of a slot reads a group
                assign reading = back;
            end else begin : g_some
                assign reading = back && bsub <= G_END;
            end
            assign groups = bsub[GB-1:0];
            assign picked = 1'b1;
            assign group_first = bsub == {SB{1'b0}};
            assign group_last = bsub == G_END;
            assign group_in = row_q[GW-1:0];  // the row shifts its groups down
            assign b_first = btap == {TB{1'b0}};
            assign b_last = btap == TAP_LAST;
            wire unused_slots = &{1'b0, add_g, add_v, in_avail};
            assign in_req = front && fsub == {SB{1'b0}} && f_valid;
            assign busy = front | back | (lag != {LB{1'b0}});

            always @(posedge clk) if (wake) begin
                if (rst) begin
                    front <= 1'b0;
                    back <= 1'b0;
                    lag <= {LB{1'b0}};
                end else begin
                    if (start && !front) begin
                        front <= 1'b1;
                        lag <= LAT;
                        fsub <= {SB{1'b0}};
                        first_tap();
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
                    // keep the arriving row (zeros for a padding tap), then shift its
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
        end else begin : g_walk
            // WALK: one tap in flight. The front requests the next tap in the cycle the
            // back reads the last group of the current one (or when nothing is in
            // flight); the row arrives the next cycle (in_ack), and the back reads the
            // weights of its non-silent groups, lowest first, V a cycle (one cycle and
            // zeros when all are silent; a slot without a group adds zeros)
            localparam integer OW_LAST_I = OW - 1;
            localparam [XB-1:0] OW_LAST = OW_LAST_I[XB-1:0];
            reg [TB-1:0] ftap;
            reg [YB-1:0] fy;         // the front's position (oy, ox)
            reg [XB-1:0] fx;
            reg [SW-1:0] kyhi;       // ... its window's valid taps
            reg [SW-1:0] kxlo;
            reg [TXW-1:0] kxlo_x;
            reg [SW-1:0] kxhi;
            reg [TB-1:0] kskip;      // ... the tap index from a row's last to the next's first
            reg          ffirst;     // the front's tap is its position's first
            reg          bfirst;
            reg          blast;
            wire         fx_end = fx == OW_LAST;
            wire         w_last = ky == kyhi && kx == kxhi;
            // the next position's ranges (the first's when idle)
            wire [YB-1:0] ny_a = (!front || fpix == OUT_LAST) ? {YB{1'b0}}
                                 : fx_end ? fy + 1'b1 : fy;
            wire [XB-1:0] nx_a = (!front || fx_end) ? {XB{1'b0}} : fx + 1'b1;
            wire [TYW-1:0] nyb = !front ? {TYW{1'b0}} : fx_end ? oyb + OY_STEP : oyb;
            wire [TXW-1:0] nxb = (!front || fx_end) ? {TXW{1'b0}} : oxb + OX_STEP;
            wire [TB+TYW+2*SW-1:0] ry;
            wire [2*TB+TXW+2*SW-1:0] rx;
            wire [TB-1:0]  ry_kw = ry[TYW+2*SW +: TB];
            wire [TYW-1:0] ry_lo_y = ry[2*SW +: TYW];
            wire [SW-1:0]  ry_lo = ry[SW +: SW];
            wire [SW-1:0]  ry_hi = ry[0 +: SW];
            wire [TB-1:0]  rx_skip = rx[TB+TXW+2*SW +: TB];
            wire [TB-1:0]  rx_lo_t = rx[TXW+2*SW +: TB];
            wire [TXW-1:0] rx_lo_x = rx[2*SW +: TXW];
            wire [SW-1:0]  rx_lo = rx[SW +: SW];
            wire [SW-1:0]  rx_hi = rx[0 +: SW];

            snn_lut #(.WIDTH(TB + TYW + 2 * SW), .DEPTH(OH), .AW(YB), .FILE(RY_FILE)) u_ry (
                .addr(ny_a), .data(ry));
            snn_lut #(.WIDTH(2 * TB + TXW + 2 * SW), .DEPTH(OW), .AW(XB), .FILE(RX_FILE))
                u_rx (.addr(nx_a), .data(rx));
            reg          arrive;     // the requested tap's row (or padding) arrives
            reg          walking;    // groups of the arrived row remain
            reg [NG-1:0] rest;       // ... these
            reg [NG-1:0] live_in;    // the non-silent groups of the arriving row
            wire [NG-1:0] live = arrive ? live_in : rest;
            wire [NG-1:0] left;
            wire         issue = front && (!reading || group_last)
                                 && (!f_valid || {1'b0, in_row} < in_avail);
            wire [C*WIN-1:0] arrived = in_ack ? in_data : {C*WIN{1'b0}};
            integer q;

            always @* begin
                for (q = 0; q < NG; q = q + 1) live_in[q] = |arrived[q*GW +: GW];
            end
            if (NG > 1) begin : g_pick
                // slot v: the lowest live group once the v below it are cleared (a
                // priority encoder each, as snn_first_one)
                reg [NG-1:0]   x;
                reg [V*GB-1:0] found;
                reg [V-1:0]    held;
                reg [NG-1:0]   after;
                integer        pv;
                integer        l;
                genvar         sv;

                always @* begin
                    x = live;
                    found = {V*GB{1'b0}};
                    for (pv = 0; pv < V; pv = pv + 1) begin
                        held[pv] = |x;
                        for (l = NG - 1; l >= 0; l = l - 1)
                            if (x[l]) found[pv*GB +: GB] = l[GB-1:0];
                        x = x & (x - 1'b1);
                    end
                    after = x;
                end
                assign groups = found;
                assign picked = held;
                assign left = after;
                for (sv = 0; sv < V; sv = sv + 1) begin : g_slot
                    wire [GB-1:0] g = add_g[sv*GB +: GB];

                    // the group's inputs selected without index arithmetic (no multiply):
                    // a live group of one bit is a one, a power-of-two field by its index,
                    // else an AND-OR select; zero when the slot holds no group
                    if (GW == 1) begin : g_bit
                        wire unused_g = &{1'b0, g};

                        assign group_in[sv] = add_v[sv];
                    end else if ((GW & (GW - 1)) == 0) begin : g_field
                        localparam integer FB = $clog2(GW);

                        assign group_in[sv*GW +: GW] = row_q[{g, {FB{1'b0}}} +: GW]
                            & {GW{add_v[sv]}};
                    end else begin : g_and_or
                        reg [GW-1:0] pick;
                        integer r;

                        always @* begin
                            pick = {GW{1'b0}};
                            for (r = 0; r < NG; r = r + 1)
                                pick = pick | (row_q[r*GW +: GW] & {GW{g == r[GB-1:0]}});
                        end
                        assign group_in[sv*GW +: GW] = pick & {GW{add_v[sv]}};
                    end
                end
                if (GW == 1) begin : g_no_row
                    wire unused_row = &{1'b0, row_q};
                end
            end else begin : g_single
                assign groups = 1'b0;
                assign picked = live;
                assign left = 1'b0;
                assign group_in = row_q;
                wire unused_live = &{1'b0, add_g, add_v};
            end
            assign reading = arrive || walking;
            assign group_first = arrive;
            assign group_last = left == {NG{1'b0}};
            assign in_req = issue && f_valid;
            assign busy = front | reading;
            assign b_first = bfirst;
            assign b_last = blast;
            wire unused_tap = &{1'b0, btap};  // a 1x1 kernel's groups alone address the ROM

            always @(posedge clk) if (wake) begin
                if (rst) begin
                    front <= 1'b0;
                    arrive <= 1'b0;
                    walking <= 1'b0;
                end else begin
                    arrive <= issue;
                    if (arrive) row_q <= arrived;
                    if (reading) begin
                        walking <= !group_last;
                        rest <= left;
                    end
                    if (start && !front) begin
                        front <= 1'b1;
                        fpix <= {ORW{1'b0}};
                        fy <= {YB{1'b0}};
                        fx <= {XB{1'b0}};
                        enter();
                    end else if (issue) begin
                        btap <= ftap;
                        bpix <= fpix;
                        bfirst <= ffirst;
                        blast <= w_last;
                        ffirst <= 1'b0;
                        if (w_last) begin
                            if (fpix == OUT_LAST) begin
                                front <= 1'b0;
                            end else begin
                                fpix <= fpix + 1'b1;
                                fx <= fx_end ? {XB{1'b0}} : fx + 1'b1;
                                if (fx_end) fy <= fy + 1'b1;
                                enter();
                            end
                        end else if (kx == kxhi) begin
                            kx <= kxlo;
                            tx_a <= oxb + kxlo_x;
                            ky <= ky + 1'b1;
                            ty_a <= ty_a + 1'b1;
                            ftap <= ftap + kskip;
                        end else begin
                            kx <= kx + 1'b1;
                            tx_a <= tx_a + 1'b1;
                            ftap <= ftap + 1'b1;
                        end
                    end
                end
            end

            // the front enters the next position (the first when idle): its window's
            // first valid tap
            task enter;
                begin
                    oyb <= nyb;
                    oxb <= nxb;
                    ky <= ry_lo;
                    kx <= rx_lo;
                    kyhi <= ry_hi;
                    kxlo <= rx_lo;
                    kxlo_x <= rx_lo_x;
                    kxhi <= rx_hi;
                    kskip <= rx_skip;
                    ftap <= ry_kw + rx_lo_t;
                    ty_a <= nyb + ry_lo_y;
                    tx_a <= nxb + rx_lo_x;
                    ffirst <= 1'b1;
                end
            endtask
        end
    endgenerate

    // the front's first tap
    task first_tap;
        begin
            fpix <= {ORW{1'b0}};
            oyb <= {TYW{1'b0}};
            oxb <= {TXW{1'b0}};
            ty_a <= {TYW{1'b0}};
            tx_a <= {TXW{1'b0}};
            ky <= {SW{1'b0}};
            kx <= {SW{1'b0}};
        end
    endtask

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
