// snn_td_maxpool: temporally decomposed max pooling of a spike tensor, channels-last,
//   out(t) = maxpool(C(t)) - maxpool(C(t-1)),
// a binary spike whose sum over the window is the max pool of the final counts. C(t) is
// the running spike count of every input; P holds every output's last pooled maximum.
//
// One run (one time step) counts and pools at once. Counting: for each input row (y, x),
// C += S on all channels at once, the rows streamed (a request every IG cycles, answered
// ILAT cycles later; the row's counts read the cycle before it arrives, written the
// cycle it does). Pooling, from the start, the outputs in order: output (oy, ox) reads
// the count rows under its window, each once it is counted (its row below the rows
// counted so far), and takes their lane-wise maximum m; out = (m != P), P = m. Padding
// taps are skipped (counts are never negative, so the maximum starts at zero). A tap a
// cycle (the window's taps in order, each waiting for its row) and a cycle to write the
// output; with WIN = 1 every tap of an output is read at once, one from each of KH*KW
// copies of the count RAM (written together), once all its rows are counted, and
// written the cycle after: an output a cycle. The counting reads a copy of its own.
// Which input row a tap reads comes from two small tables:
//   TY[oy*KH + ky] = {valid, iy*W},  TX[ox*KW + kx] = {valid, ix}
// (WIN: KH lookups of TY and KW of TX at once). Done the cycle after the last count and
// the last output's write. IL = 0: the pooling begins after the last count (streaming a
// producer whose rows' write times the cycle estimate cannot follow).
// On the first run of an inference the stored C and P read as zero (a lazy reset).
// Input row r is asked for only once in_avail > r: a producer writing the input buffer
// in the same step (started together, one at a time) says how many rows it has written
// so far; otherwise in_avail is H*W.
// The spikes of the other neuron kinds (SPIKE; 0 unit spikes) in WS bits per lane:
//   1, signed spikes (+1/-1, two's complement): C goes up and down, by at most one a
//      step, so does its maximum: out = m - P is a signed spike {m < P, m != P};
//   2, a number on WS weighted lines: C only grows, out = m - P is a number on lines.
// Either way |m - P| <= L < 2^WS, so P is kept modulo 2^WS (the low WS bits of m).
// WCNT > WS.
module snn_td_maxpool #(
    parameter H    = 8,
    parameter W    = 8,
    parameter C    = 4,    // channels (lanes)
    parameter OH   = 4,
    parameter OW   = 4,
    parameter KH   = 2,
    parameter KW   = 2,
    parameter IRW  = 6,    // input row bits
    parameter ORW  = 4,    // output row bits
    parameter TYW  = 3,    // TY address bits
    parameter TXW  = 3,    // TX address bits
    parameter SW   = 1,    // tap counter bits (holds KH - 1, KW - 1)
    parameter WCNT = 3,    // count width
    parameter TY_FILE = "ty.hex",
    parameter TX_FILE = "tx.hex",
    parameter SPIKE = 0,   // 0 unit spikes, 1 signed, 2 weighted lines
    parameter WS    = 1,   // spike bits per lane
    parameter IG    = 1,   // cycles between input row requests
    parameter ILAT  = 1,   // ... and from a request to its row (the port's latency)
    parameter GW    = 1,   // bits of the request gap counter (holds IG - 1)
    parameter WIN   = 0,   // 1: every tap of an output a cycle, from KH*KW count RAM copies
    parameter IL    = 1    // 0: the pooling waits for the last count (not beside the counting)
) (
    input  wire           clk,
    input  wire           rst,
    input  wire           start,
    input  wire           clear,     // a new inference begins: forget the stored state
    input  wire           in_valid,
    input  wire [IRW:0]   in_avail,  // input rows that may be read (rows 0..in_avail-1)
    output reg            done,
    output reg            in_req,
    output reg  [IRW-1:0] in_row,
    input  wire           in_ack,
    input  wire [C*WS-1:0] in_data,
    output wire           out_we,
    output wire [ORW-1:0] out_waddr,
    output wire [C*WS-1:0] out_wdata
);
    localparam integer IG_GAP_I = IG - 1;
    localparam [GW-1:0] IG_GAP = IG_GAP_I[GW-1:0];
    localparam integer IN_LAST_I = H * W - 1;
    localparam [IRW-1:0] IN_LAST = IN_LAST_I[IRW-1:0];
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
    localparam integer PW = (SPIKE == 0) ? WCNT : WS;   // bits of a kept maximum P
    localparam integer KK = KH * KW;
    localparam integer NT = (WIN != 0) ? KK : 1;        // the taps' copies of the count RAM
    localparam integer NCOPY = NT + 1;                  // ... and the counting's

    // no run yet in this inference: the stored state reads as zero (a lazy reset)
    reg first;

    wire first_wake = rst | clear | done;

    always @(posedge clk) if (first_wake) first <= rst | clear;

    reg             running;
    reg             counting;   // input rows still to count
    reg             pooling;    // outputs still to write
    reg [IRW-1:0]   i;          // input rows counted (the next one to count)
    reg [IRW-1:0]   rr;         // input row whose counts are read next
    reg [IRW-1:0]   q;          // the next input row to request
    reg             asking;     // input rows still to request
    reg [GW-1:0]    gap;        // cycles to the next request
    reg             reading;    // a silent input: rows still to read
    reg             rd_q;       // ... one was read in the last cycle
    wire            rd;         // row rr's counts are read this cycle
    reg [ORW-1:0]   o;          // output row being pooled
    reg [TYW-1:0]   oyb;
    reg [TXW-1:0]   oxb;
    reg [SW-1:0]    ky;
    reg [SW-1:0]    kx;
    reg [TYW-1:0]   ty_a;
    reg [TXW-1:0]   tx_a;
    reg             writing;    // a tap a cycle: output o is written this cycle
    reg             tap_q;      // a valid tap's count row arrives this cycle
    reg [C*WCNT-1:0] mx;
    reg             issuing;    // WIN: outputs still to read
    reg             wq;         // WIN: output o_w's taps arrive this cycle
    reg [ORW-1:0]   o_w;
    reg [NT-1:0]    tv_q;       // WIN: ... and which of them are valid

    wire [IRW:0]      ty;
    wire [IRW:0]      tx;
    wire [NCOPY*C*WCNT-1:0] cnt_all;    // the copies' read data
    wire [C*WCNT-1:0] cnt_rdata = cnt_all[NT*C*WCNT +: C*WCNT];   // the counting's
    wire [C*WCNT-1:0] tap_rdata = cnt_all[C*WCNT-1:0];            // a tap a cycle
    wire [NT*IRW-1:0] win_rows;         // the row of every tap read (WIN: of output o)
    wire [NT-1:0]     win_ok;           // ... and whether it is inside the input
    wire [NT-1:0]     win_in;           // ... and counted (padding: always)
    reg  [C*WCNT-1:0] win_max;          // WIN: the lane-wise maximum of the valid taps
    reg  [C*WCNT-1:0] cnt_next;
    reg  [C*WCNT-1:0] mx_next;
    reg  [C*WS-1:0]   spikes;
    reg  [C*PW-1:0]   prev_wdata;
    wire [C*PW-1:0]   prev_rdata;
    wire              tap_valid = ty[IRW] && tx[IRW];
    wire              last_tap = ky == KH_LAST && kx == KW_LAST;
    wire              counted = counting && (in_valid ? in_ack : rd_q);
    wire              last_out = (WIN != 0) ? o_w == OUT_LAST : o == OUT_LAST;
    wire              ready = &win_in;  // every row the taps read is counted
    // the next output's table bases (a row of outputs done: the next row's first)
    wire              row_end = oxb == OX_LAST;
    wire [TXW-1:0]    oxb_next = row_end ? {TXW{1'b0}} : oxb + OX_STEP;
    wire [TYW-1:0]    oyb_next = row_end ? oyb + OY_STEP : oyb;
    genvar j, jy, jx;

    generate
        if (WIN == 0) begin : g_serial
            snn_lut #(.WIDTH(IRW + 1), .DEPTH(OH * KH), .AW(TYW), .FILE(TY_FILE)) u_ty (
                .addr(ty_a), .data(ty));
            snn_lut #(.WIDTH(IRW + 1), .DEPTH(OW * KW), .AW(TXW), .FILE(TX_FILE)) u_tx (
                .addr(tx_a), .data(tx));
            assign win_rows = ty[IRW-1:0] + tx[IRW-1:0];  // the tap's row
            assign win_ok = tap_valid;
        end else begin : g_win
            wire [KH*(IRW+1)-1:0] tys;
            wire [KW*(IRW+1)-1:0] txs;
            assign ty = tys[IRW:0];
            assign tx = txs[IRW:0];
            for (jy = 0; jy < KH; jy = jy + 1) begin : g_ty
                localparam integer DY_I = jy;
                localparam [TYW-1:0] DY = DY_I[TYW-1:0];
                snn_lut #(.WIDTH(IRW + 1), .DEPTH(OH * KH), .AW(TYW), .FILE(TY_FILE)) u_ty (
                    .addr(ty_a + DY), .data(tys[jy*(IRW+1) +: IRW+1]));
            end
            for (jx = 0; jx < KW; jx = jx + 1) begin : g_tx
                localparam integer DX_I = jx;
                localparam [TXW-1:0] DX = DX_I[TXW-1:0];
                snn_lut #(.WIDTH(IRW + 1), .DEPTH(OW * KW), .AW(TXW), .FILE(TX_FILE)) u_tx (
                    .addr(tx_a + DX), .data(txs[jx*(IRW+1) +: IRW+1]));
            end
            for (jy = 0; jy < KH; jy = jy + 1) begin : g_row
                for (jx = 0; jx < KW; jx = jx + 1) begin : g_col
                    assign win_rows[(jy*KW + jx)*IRW +: IRW] =
                        tys[jy*(IRW+1) +: IRW] + txs[jx*(IRW+1) +: IRW];
                    assign win_ok[jy*KW + jx] = tys[jy*(IRW+1) + IRW] && txs[jx*(IRW+1) + IRW];
                end
            end
        end
        for (j = 0; j < NT; j = j + 1) begin : g_tap
            assign win_in[j] = !counting
                || (IL != 0 && (!win_ok[j] || win_rows[j*IRW +: IRW] < i));
        end
        for (j = 0; j < NCOPY; j = j + 1) begin : g_copy
            snn_ram #(.WIDTH(C * WCNT), .DEPTH(H * W), .AW(IRW)) u_count (
                .clk(clk), .we(counted), .waddr(i), .wdata(cnt_next), .re(running),
                .raddr(j == NT ? rr : win_rows[(j % NT)*IRW +: IRW]),
                .rdata(cnt_all[j*C*WCNT +: C*WCNT]));
        end
    endgenerate

    generate
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
    endgenerate
    snn_ram #(.WIDTH(C * PW), .DEPTH(OH * OW), .AW(ORW)) u_prev (
        .clk(clk), .we(out_we), .waddr(out_waddr), .wdata(prev_wdata),
        .re(running), .raddr(o), .rdata(prev_rdata));

    // Lane datapaths as loops in a combinational block (see snn_neuron). WCNT > WS.
    reg [WCNT-1:0] cnt;
    reg [WCNT-1:0] m;
    reg [WCNT-1:0] tap;
    reg [WCNT-1:0] one;    // a tap a cycle: its count
    integer l, t;

    always @* begin  // WIN: the maximum over the valid taps (padding reads as zero)
        win_max = {C*WCNT{1'b0}};
        for (t = 0; t < NT; t = t + 1) begin
            for (l = 0; l < C; l = l + 1) begin
                tap = cnt_all[(t*C + l)*WCNT +: WCNT];
                if (tv_q[t] && tap > win_max[l*WCNT +: WCNT]) win_max[l*WCNT +: WCNT] = tap;
            end
        end
    end

    generate
        if (SPIKE == 0) begin : g_unit
            always @* begin
                for (l = 0; l < C; l = l + 1) begin
                    cnt = cnt_rdata[l*WCNT +: WCNT];
                    one = tap_rdata[l*WCNT +: WCNT];
                    m = (WIN != 0) ? win_max[l*WCNT +: WCNT]
                        : (tap_q && one > mx[l*WCNT +: WCNT]) ? one : mx[l*WCNT +: WCNT];
                    cnt_next[l*WCNT +: WCNT] = (first ? {WCNT{1'b0}} : cnt)
                        + {{(WCNT-1){1'b0}}, in_valid && in_data[l]};
                    mx_next[l*WCNT +: WCNT] = m;
                    prev_wdata[l*WCNT +: WCNT] = m;
                    spikes[l] = m != (first ? {WCNT{1'b0}} : prev_rdata[l*WCNT +: WCNT]);
                end
            end
        end else begin : g_spikes
            reg [WS-1:0]   p;
            reg [WS-1:0]   s;

            always @* begin
                for (l = 0; l < C; l = l + 1) begin
                    cnt = cnt_rdata[l*WCNT +: WCNT];
                    one = tap_rdata[l*WCNT +: WCNT];
                    m = (WIN != 0) ? win_max[l*WCNT +: WCNT]
                        : (tap_q && one > mx[l*WCNT +: WCNT]) ? one : mx[l*WCNT +: WCNT];
                    s = in_valid ? in_data[l*WS +: WS] : {WS{1'b0}};
                    cnt_next[l*WCNT +: WCNT] = (first ? {WCNT{1'b0}} : cnt)
                        + {{(WCNT-WS){SPIKE == 1 && s[WS-1]}}, s};
                    mx_next[l*WCNT +: WCNT] = m;
                    prev_wdata[l*WS +: WS] = m[WS-1:0];
                    p = first ? {WS{1'b0}} : prev_rdata[l*WS +: WS];
                    spikes[l*WS +: WS] = m[WS-1:0] - p;  // +-1 (signed), 0..L (lines)
                end
            end
        end
    endgenerate

    assign out_we    = (WIN != 0) ? wq : writing;
    assign out_waddr = (WIN != 0) ? o_w : o;
    assign out_wdata = spikes;

    // the run ends with the last count and the last output's write (either may be last)
    wire count_end = !counting || (counted && i == IN_LAST);
    wire pool_end  = !pooling || (out_we && last_out);

    // the FSM's clocked block runs only while there is something to do (an idle engine
    // costs an event-driven simulator nothing)
    wire wake = rst | start | done | running;
    wire first_ok = in_avail != {(IRW+1){1'b0}};   // row 0 may be read at the start

    always @(posedge clk) if (wake) begin
        if (rst) begin
            running <= 1'b0;
            counting <= 1'b0;
            pooling <= 1'b0;
            done <= 1'b0;
            in_req <= 1'b0;
            tap_q <= 1'b0;
            reading <= 1'b0;
            rd_q <= 1'b0;
            wq <= 1'b0;
            writing <= 1'b0;
        end else if (!running) begin
            done <= 1'b0;
            if (start) begin
                // request input row 0 (through the port), once it may be read; the
                // pooling begins with output 0
                running <= 1'b1;
                counting <= 1'b1;
                pooling <= 1'b1;
                in_req <= in_valid && first_ok;
                in_row <= {IRW{1'b0}};
                asking <= in_valid && (H * W > 1 || !first_ok);
                gap <= IG_GAP;
                reading <= !in_valid;
                q <= first_ok ? {IRW{1'b0}} + 1'b1 : {IRW{1'b0}};
                i <= {IRW{1'b0}};
                rr <= {IRW{1'b0}};
                o <= {ORW{1'b0}};
                oyb <= {TYW{1'b0}};
                oxb <= {TXW{1'b0}};
                ty_a <= {TYW{1'b0}};
                tx_a <= {TXW{1'b0}};
                ky <= {SW{1'b0}};
                kx <= {SW{1'b0}};
                mx <= {C*WCNT{1'b0}};
                issuing <= 1'b1;
                writing <= 1'b0;
                wq <= 1'b0;
                tap_q <= 1'b0;
            end
        end else begin
            in_req <= 1'b0;
            rd_q <= rd && counting;
            if (count_end && pool_end) begin
                running <= 1'b0;
                done <= 1'b1;
            end
            // counting: a request every IG cycles, row rr's counts read the cycle
            // before it arrives, row i counted the cycle it does
            if (counting) begin
                if (gap != {GW{1'b0}}) gap <= gap - 1'b1;
                if (asking && gap == {GW{1'b0}} && {1'b0, q} < in_avail) begin
                    in_req <= 1'b1;
                    gap <= IG_GAP;
                    q <= q + 1'b1;
                    if (q == IN_LAST) asking <= 1'b0;
                end
                if (in_req) in_row <= in_row + 1'b1;
                if (rd) begin
                    rr <= rr + 1'b1;
                    if (rr == IN_LAST) reading <= 1'b0;
                end
                if (counted) begin
                    i <= i + 1'b1;
                    if (i == IN_LAST) counting <= 1'b0;
                end
            end
            if (WIN != 0) begin
                // every tap of output o read in the cycle its rows are all counted, the
                // output written the next: out = (m != P), P = m
                wq <= issuing && ready;
                o_w <= o;
                tv_q <= win_ok;
                if (issuing && ready) begin
                    if (o == OUT_LAST) begin
                        issuing <= 1'b0;
                    end else begin
                        next_output;
                    end
                end
                if (wq && last_out) pooling <= 1'b0;
            end else if (!writing) begin
                // a tap a cycle once its row is counted; its count row is folded in the
                // next cycle
                tap_q <= pooling && tap_valid && ready;
                mx <= mx_next;
                if (pooling && ready) begin
                    if (last_tap) begin
                        writing <= 1'b1;
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
            end else begin  // output o written: out = (m != P), P = m; the next output
                tap_q <= 1'b0;
                writing <= 1'b0;
                mx <= {C*WCNT{1'b0}};
                ky <= {SW{1'b0}};
                kx <= {SW{1'b0}};
                if (last_out) begin
                    pooling <= 1'b0;
                end else begin
                    next_output;
                end
            end
        end
    end

    // the next output: its window's first tap (both pooling orders)
    task next_output;
        begin
            o <= o + 1'b1;
            oxb <= oxb_next;
            tx_a <= oxb_next;
            oyb <= oyb_next;
            ty_a <= oyb_next;
        end
    endtask
endmodule
