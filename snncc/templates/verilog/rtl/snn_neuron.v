// snn_neuron: R rows of D delayed integrate-and-fire (DIF) neurons, one row per step of
// its FSM, the D lanes in parallel.
//
// Per time step, for every neuron i, by its kind (MODE), with n[i] its count so far:
//   v[i] += I[i]                                  (I is zero when in_valid is low)
//   if (MODE 0):  if fire_en and n[i] < L and sign*v[i] >= theta[i][n[i]]:
//                     spike[i] = 1, n[i] += 1     (at most one spike per step)
//   signed (1):   if fire_en and n[i] < L and sign*v[i] >= theta[i][n[i]]:
//                     spike[i] = +1, n[i] += 1
//                 else if fire_en and n[i] > 0 and sign*v[i] < theta[i][n[i]-1]:
//                     spike[i] = -1, n[i] -= 1    (takes the last spike back)
//                 a spike is two bits, two's complement (01 = +1, 11 = -1)
//   multi (2):    c = #{k : sign*v[i] >= theta[i][k]} (a bank of L comparators; the
//                 thresholds are non-decreasing, so the levels reached are 0..c-1);
//                 if fire_en and c > n[i]: spike[i] = c - n[i], n[i] = c
//                 a spike is that number on SW weighted lines (line j weighs 2^j)
// fire_en comes from the schedule: the neuron's firing window (t_fire .. t_fire+L-1 for
// if, the step t_fire for multi, t_fire until L steps after its input ends for signed).
// sign is a conditional negation (a flag in the threshold table), never a multiply.
// Threshold rows are shared: row r uses table word (r / INNER) % TROWS, which holds,
// for each lane, L thresholds of WC bits and the negate flag:
//   word = {lane D-1: {negate, theta[L-1], .., theta[0]}, .., lane 0: {...}}.
// On the first run of an inference the stored v and n read as zero (a lazy reset), so
// no clearing pass is needed. A row of counts n can be read back through dbg_* when
// idle.
// NP < D folds the lanes (the parallelism knob): a row is processed NP lanes a cycle
// in D/NP = 2^CB chunks, so the state RAMs are R*D/NP words of NP lanes (narrow and
// deep: block-RAM shaped) and the datapath has NP lanes. State word {r, c} holds lanes
// c*NP .. c*NP+NP-1 of row r (so does the read-back: dbg_row = {r, c}); the threshold
// table likewise has words {trow, c}. The input row is kept when it arrives, the spikes
// of the row shift in from the top and are written with its last chunk. A chunk after
// the first costs one cycle.
// A whole row a cycle (NP = D) streams the rows: a request every IG cycles (IG: the
// port's segments, answered ILAT cycles later), the row's state (and thresholds) read
// the cycle before its input arrives, and the row integrated, fired and written in the
// cycle it arrives (a silent input: a row a cycle). Row r is asked for only once
// in_avail > r: a producer writing the input buffer in the same step (started together,
// one at a time) says how many rows it has written so far; otherwise in_avail is R.
module snn_neuron #(
    parameter R       = 16,    // rows
    parameter D       = 8,     // lanes (neurons per row)
    parameter RW      = 4,     // row index bits
    parameter WI      = 8,     // input current width (two's complement)
    parameter WV      = 12,    // membrane width
    parameter WC      = 13,    // comparison width: holds +-v and every threshold
    parameter L       = 7,     // levels: most spikes per neuron and inference
    parameter NB      = 3,     // spike count bits (holds L)
    parameter LB      = 3,     // level bits (holds L - 1)
    parameter TROWS   = 1,     // threshold table words
    parameter TRB     = 1,     // threshold word index bits (holds TROWS - 1)
    parameter INNER   = 16,    // consecutive rows sharing a threshold word
    parameter IB      = 4,     // bits of the INNER counter (holds INNER - 1)
    parameter TH_ASYNC = 1,    // the table is a few constant words (combinational read)
    parameter TH_FILE = "th.hex",
    parameter MODE    = 0,     // 0: if, 1: signed, 2: multi (above)
    parameter SW      = 1,     // spike bits: 1 (if), 2 (signed), the lines (multi: holds L)
    parameter NP      = D,     // lanes per cycle (D / NP a power of two)
    parameter CB      = 1,     // chunk index bits when NP < D: D / NP = 2^CB
    parameter SAW     = RW,    // state word address bits: {r, chunk} (r only when R > 1)
    parameter IG      = 1,     // NP = D: cycles between input row requests
    parameter ILAT    = 1,     // ... and from a request to its row (the port's latency)
    parameter GW      = 1      // bits of the request gap counter (holds IG - 1)
) (
    input  wire            clk,
    input  wire            rst,
    input  wire            start,
    input  wire            clear,     // a new inference begins: forget the stored state
    input  wire            in_valid,
    input  wire            fire_en,
    input  wire [RW:0]     in_avail,  // NP = D: input rows that may be read (rows 0..in_avail-1)
    output reg             done,
    // input current rows (an snn_port)
    output reg             in_req,
    output wire [RW-1:0]   in_row,
    input  wire            in_ack,
    input  wire [D*WI-1:0] in_data,
    // output spike rows (buffer write port)
    output wire            out_we,
    output wire [RW-1:0]   out_waddr,
    output wire [D*SW-1:0] out_wdata,
    // spike count read-back while idle, a row per cycle (dbg_en: this layer is read)
    input  wire            dbg_en,
    input  wire [SAW-1:0]  dbg_row,   // {r, chunk} when folded
    output wire [NP*NB-1:0] dbg_counts
);
    localparam integer NC = D / NP;                   // chunks of NP lanes in a row
    // threshold word address bits: {trow, chunk} (trow only when TROWS > 1)
    localparam integer TAW = (NC == 1) ? TRB : (TROWS > 1) ? TRB + CB : CB;
    reg busy;   // between start and done
    localparam integer LAST_I = R - 1;
    localparam [RW-1:0] LAST = LAST_I[RW-1:0];
    localparam integer INNER_LAST_I = INNER - 1;
    localparam [IB-1:0] INNER_LAST = INNER_LAST_I[IB-1:0];
    localparam integer TROW_LAST_I = TROWS - 1;
    localparam [TRB-1:0] TROW_LAST = TROW_LAST_I[TRB-1:0];
    localparam integer LEVELS_I = L;
    localparam [NB-1:0] LEVELS = LEVELS_I[NB-1:0];
    localparam integer TOP_I = L - 1;
    localparam [NB-1:0] TOP_NB = TOP_I[NB-1:0];
    localparam [LB-1:0] TOP_LEVEL = TOP_I[LB-1:0];
    localparam integer TW = L * WC + 1;    // table bits per lane

    // no run yet in this inference: the stored state reads as zero (a lazy reset)
    reg first;

    wire first_wake = rst | clear | done;

    always @(posedge clk) if (first_wake) first <= rst | clear;

    reg           waiting;    // the row's input and state reads are in flight
    reg           settled;    // the row's state and thresholds have been read
    reg [RW-1:0]  r;          // the row integrated and fired (its state written)
    reg [IB-1:0]  inner;
    reg [TRB-1:0] trow;
    wire          th_next;    // the threshold word moves on to the next row's
    wire          ask;        // streamed: request the next input row
    wire          first_ok;   // ... row 0 may be requested at the start
    wire [RW-1:0] req_row;    // the input row requested

    wire [NP*WV-1:0] v_rdata;
    wire [NP*NB-1:0] n_rdata;
    wire [NP*WV-1:0] v_row = busy ? v_rdata : {NP*WV{1'b0}};  // operand isolation
    wire [NP*NB-1:0] n_row = busy ? n_rdata : {NP*NB{1'b0}};
    wire [NP*TW-1:0] th_rdata;
    reg  [NP*WV-1:0] v_wdata;
    reg  [NP*NB-1:0] n_wdata;
    reg  [NP*SW-1:0] spikes;
    wire [NP*WI-1:0] in_lanes;   // the chunk's input currents
    wire             chunk_in;   // the chunk's input is here (a later chunk: kept)
    wire             row_ready = (NC == 1) ? chunk_in  // streamed: the row has arrived
                                 : waiting && settled && (chunk_in || !in_valid);
    wire             chunk_last; // the row's last chunk
    wire             row_end = row_ready && chunk_last;
    wire [SAW-1:0]   s_waddr;    // state word of this chunk
    wire [SAW-1:0]   s_raddr;    // state word read this cycle: the next chunk's when one follows
    wire [TAW-1:0]   th_addr;    // threshold word: this chunk's (combinational table), or
                                 // the one read this cycle (synchronous table)

    generate
        if (NC > 1) begin : g_fold
            reg [CB-1:0]    c;
            reg [D*WI-1:0]  held;      // the row's input, kept for the later chunks
            reg [(D-NP)*SW-1:0] sp_q;  // the row's spikes so far, shifting in from the top
            wire [D*SW-1:0] sp_all = {spikes, sp_q};
            wire [NP*WI-1:0] held_lanes;
            wire [CB-1:0]   c_rd = (row_ready && !chunk_last) ? c + 1'b1 : c;
            wire [CB-1:0]   c_th = (TH_ASYNC != 0) ? c : c_rd;

            always @(posedge clk) begin
                if (in_ack) held <= in_data;
                if (row_ready) sp_q <= sp_all[D*SW-1:NP*SW];
                if (rst || start || row_end) c <= {CB{1'b0}};
                else if (row_ready) c <= c + 1'b1;
            end
            snn_lane_mux #(.N(NC), .W(NP * WI), .IW(CB)) u_in (
                .row(held), .index(c), .lane(held_lanes));
            assign in_lanes = (c == {CB{1'b0}}) ? in_data[NP*WI-1:0] : held_lanes;
            assign chunk_in = (c == {CB{1'b0}}) ? in_ack : 1'b1;
            assign chunk_last = &c;
            if (R > 1) begin : g_rows
                assign s_waddr = {r, c};
                assign s_raddr = {r, c_rd};
            end else begin : g_row
                assign s_waddr = c;
                assign s_raddr = c_rd;
            end
            if (TROWS > 1) begin : g_trows
                assign th_addr = {trow, c_th};
            end else begin : g_trow
                assign th_addr = c_th;
            end
            assign out_wdata = sp_all;
            assign th_next = row_end && r != LAST;
            assign ask = 1'b0;
            assign first_ok = 1'b1;
            assign req_row = r;
            wire unused_avail = &{1'b0, in_avail};
        end else begin : g_whole
            // rows streamed: row rr's state (and synchronous thresholds) is read in the
            // cycle rd, the one before its input arrives (in_ack; a silent input: rd_q)
            localparam integer IG_GAP_I = IG - 1;
            localparam [GW-1:0] IG_GAP = IG_GAP_I[GW-1:0];
            reg [RW-1:0] q;        // the next row to request
            reg          asking;   // rows still to request
            reg [GW-1:0] gap;      // cycles to the next request
            reg [RW-1:0] rq;       // the row requested
            reg [RW-1:0] rr;       // the row whose state is read next
            reg          reading;  // a silent input: rows still to read
            reg          rd_q;     // ... one was read in the last cycle
            wire         rd;

            if (ILAT == 1) begin : g_lat1
                assign rd = in_valid ? in_req : reading;
            end else begin : g_lat
                reg [ILAT-2:0] seen;   // the requests the port has seen, by age
                if (ILAT == 2) begin : g_one
                    always @(posedge clk) seen <= in_req;
                end else begin : g_more
                    always @(posedge clk) seen <= {seen[ILAT-3:0], in_req};
                end
                assign rd = in_valid ? seen[ILAT-2] : reading;
            end

            always @(posedge clk) begin
                rd_q <= rd && busy;
                if (rst) begin
                    reading <= 1'b0;
                end else if (start) begin
                    q <= first_ok ? {RW{1'b0}} + 1'b1 : {RW{1'b0}};
                    asking <= in_valid && (R > 1 || !first_ok);
                    gap <= IG_GAP;
                    rq <= {RW{1'b0}};
                    rr <= {RW{1'b0}};
                    reading <= !in_valid;
                end else begin
                    if (gap != {GW{1'b0}}) gap <= gap - 1'b1;
                    if (ask) begin
                        gap <= IG_GAP;
                        q <= q + 1'b1;
                        if (q == LAST) asking <= 1'b0;
                    end
                    if (in_req) rq <= rq + 1'b1;
                    if (rd) begin
                        rr <= rr + 1'b1;
                        if (rr == LAST) reading <= 1'b0;
                    end
                end
            end
            assign ask = busy && asking && gap == {GW{1'b0}} && {1'b0, q} < in_avail;
            assign first_ok = in_avail != {(RW+1){1'b0}};
            assign req_row = rq;
            assign in_lanes = in_data;
            assign chunk_in = in_valid ? in_ack : rd_q;
            assign chunk_last = 1'b1;
            assign s_waddr = r;
            assign s_raddr = rr;
            assign th_addr = trow;
            assign th_next = (TH_ASYNC != 0) ? row_end : rd && busy;
            assign out_wdata = spikes;
        end
    endgenerate

    always @(posedge clk) begin
        if (start) begin
            inner <= {IB{1'b0}};
            trow <= {TRB{1'b0}};
        end else if (th_next) begin
            if (inner == INNER_LAST) begin
                inner <= {IB{1'b0}};
                trow <= (trow == TROW_LAST) ? {TRB{1'b0}} : trow + 1'b1;
            end else begin
                inner <= inner + 1'b1;
            end
        end
    end

    snn_ram #(.WIDTH(NP * WV), .DEPTH(R * NC), .AW(SAW)) u_v (
        .clk(clk), .we(row_ready), .waddr(s_waddr), .wdata(v_wdata), .re(busy),
        .raddr(s_raddr), .rdata(v_rdata));
    snn_ram #(.WIDTH(NP * NB), .DEPTH(R * NC), .AW(SAW)) u_n (
        .clk(clk), .we(row_ready), .waddr(s_waddr), .wdata(n_wdata),
        .re(busy || dbg_en), .raddr(dbg_en && !busy ? dbg_row : s_raddr), .rdata(n_rdata));
    generate
        if (TH_ASYNC != 0) begin : g_th_logic
            // a few constant words: logic, read combinationally
            snn_lut #(.WIDTH(NP * TW), .DEPTH(TROWS * NC), .AW(TAW), .FILE(TH_FILE)) u_th (
                .addr(th_addr), .data(th_rdata));
        end else begin : g_th_rom
            snn_rom #(.WIDTH(NP * TW), .DEPTH(TROWS * NC), .AW(TAW), .FILE(TH_FILE)) u_th (
                .clk(clk), .re(busy), .raddr(th_addr), .rdata(th_rdata));
        end
    endgenerate

    // Lane datapaths are loops in a combinational block (the same hardware as per-lane
    // assignments; event-driven simulators evaluate a row once). WV > WI, WC > WV, NB > 1.
    reg [WV-1:0] v_old;
    reg [WV-1:0] v_new;
    reg [NB-1:0] n_old;
    reg [WC-1:0] v_wide;
    reg [WC-1:0] signed_v;
    integer k;
    integer j;

    generate
        if (MODE == 1) begin : g_signed
            // +1 against theta[n], -1 against theta[n-1]
            reg [LB-1:0] up_level;
            reg [NB-1:0] below;
            reg [WC-1:0] theta_up;
            reg [WC-1:0] theta_down;
            reg          up;
            reg          down;

            always @* begin
                for (k = 0; k < NP; k = k + 1) begin
                    v_old = first ? {WV{1'b0}} : v_row[k*WV +: WV];
                    v_new = v_old + (in_valid
                        ? {{(WV-WI){in_lanes[k*WI+WI-1]}}, in_lanes[k*WI +: WI]} : {WV{1'b0}});
                    n_old = first ? {NB{1'b0}} : n_row[k*NB +: NB];
                    up_level = (n_old > TOP_NB) ? TOP_LEVEL : n_old[LB-1:0];
                    below = (n_old == {NB{1'b0}}) ? {NB{1'b0}} : n_old - 1'b1;
                    theta_up = {WC{1'b0}};
                    theta_down = {WC{1'b0}};
                    for (j = 0; j < L; j = j + 1) begin
                        if (up_level == j[LB-1:0]) theta_up = th_rdata[k*TW + j*WC +: WC];
                        if (below[LB-1:0] == j[LB-1:0]) theta_down = th_rdata[k*TW + j*WC +: WC];
                    end
                    v_wide = {{(WC-WV){v_new[WV-1]}}, v_new};
                    signed_v = th_rdata[k*TW + TW - 1] ? ~v_wide + 1'b1 : v_wide;
                    up = fire_en && (n_old < LEVELS) && ($signed(signed_v) >= $signed(theta_up));
                    down = fire_en && !up && (n_old != {NB{1'b0}})
                        && ($signed(signed_v) < $signed(theta_down));
                    v_wdata[k*WV +: WV] = v_new;
                    n_wdata[k*NB +: NB] = down ? below : n_old + {{(NB-1){1'b0}}, up};
                    spikes[k*SW +: SW] = {down, up || down};
                end
            end
        end else if (MODE == 2) begin : g_multi
            // every level reached at once: c - n spikes as one number
            reg [NB-1:0] reached;
            reg [NB-1:0] sent;

            always @* begin
                for (k = 0; k < NP; k = k + 1) begin
                    v_old = first ? {WV{1'b0}} : v_row[k*WV +: WV];
                    v_new = v_old + (in_valid
                        ? {{(WV-WI){in_lanes[k*WI+WI-1]}}, in_lanes[k*WI +: WI]} : {WV{1'b0}});
                    n_old = first ? {NB{1'b0}} : n_row[k*NB +: NB];
                    v_wide = {{(WC-WV){v_new[WV-1]}}, v_new};
                    signed_v = th_rdata[k*TW + TW - 1] ? ~v_wide + 1'b1 : v_wide;
                    reached = {NB{1'b0}};
                    for (j = 0; j < L; j = j + 1)
                        if ($signed(signed_v) >= $signed(th_rdata[k*TW + j*WC +: WC]))
                            reached = j[NB-1:0] + 1'b1;
                    sent = (fire_en && reached > n_old) ? reached - n_old : {NB{1'b0}};
                    v_wdata[k*WV +: WV] = v_new;
                    n_wdata[k*NB +: NB] = n_old + sent;
                    spikes[k*SW +: SW] = sent[SW-1:0];
                end
            end
        end else begin : g_if
            reg [LB-1:0] level;
            reg [WC-1:0] theta;
            reg          fire;

            always @* begin
                for (k = 0; k < NP; k = k + 1) begin
                    v_old = first ? {WV{1'b0}} : v_row[k*WV +: WV];
                    v_new = v_old + (in_valid
                        ? {{(WV-WI){in_lanes[k*WI+WI-1]}}, in_lanes[k*WI +: WI]} : {WV{1'b0}});
                    n_old = first ? {NB{1'b0}} : n_row[k*NB +: NB];
                    level = (n_old > TOP_NB) ? TOP_LEVEL : n_old[LB-1:0];
                    theta = {WC{1'b0}};
                    for (j = 0; j < L; j = j + 1)
                        if (level == j[LB-1:0]) theta = th_rdata[k*TW + j*WC +: WC];
                    v_wide = {{(WC-WV){v_new[WV-1]}}, v_new};
                    signed_v = th_rdata[k*TW + TW - 1] ? ~v_wide + 1'b1 : v_wide;
                    fire = fire_en && (n_old < LEVELS) && ($signed(signed_v) >= $signed(theta));
                    v_wdata[k*WV +: WV] = v_new;
                    n_wdata[k*NB +: NB] = n_old + {{(NB-1){1'b0}}, fire};
                    spikes[k] = fire;
                end
            end
        end
    endgenerate

    assign dbg_counts = n_rdata;

    assign in_row    = req_row;
    assign out_we    = row_end;
    assign out_waddr = r;

    // the FSM's clocked block runs only while there is something to do (an idle engine
    // costs an event-driven simulator nothing)
    wire wake = rst | start | done | (busy);

    always @(posedge clk) if (wake) begin
        if (rst) begin
            busy <= 1'b0;
            done <= 1'b0;
            waiting <= 1'b0;
            in_req <= 1'b0;
        end else begin
            done <= 1'b0;
            in_req <= 1'b0;
            settled <= waiting && !row_end;
            if (start) begin
                // read row 0: its input (through the port), its state, its thresholds
                busy <= 1'b1;
                waiting <= 1'b1;
                in_req <= in_valid && first_ok;
                r <= {RW{1'b0}};
            end else if (row_end) begin
                // the row is integrated and fired in this cycle; read the next one
                if (r == LAST) begin
                    waiting <= 1'b0;
                    busy <= 1'b0;
                    done <= 1'b1;
                end else begin
                    in_req <= in_valid && NC > 1;  // streamed: requested ahead (ask)
                    r <= r + 1'b1;
                end
            end
            if (ask) in_req <= 1'b1;
        end
    end
endmodule
