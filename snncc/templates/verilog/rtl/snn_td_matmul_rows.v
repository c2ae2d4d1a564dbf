// snn_td_matmul_rows: the temporally decomposed product of two unit-spike tensors
// (snn_td_matmul) an output row per cycle,
//   dP(t) = S_A(t) . C_B(t) + C_A(t-1) . S_B(t),   A [NB, N, K], B [NB, K, M] -> [NB, N, M],
// every k of a row summed at once: out[m] = sum_k (S_A[k] ? C_B[k][m] : 0)
// + (S_B[k][m] ? C_A[k] : 0), 2K selected counts per output lane (additions only). The
// engine the knob picks when it allows K events per cycle; snn_td_matmul walks the
// events one per cycle.
//
// C_B and S_B of every batch are register files, kept between runs (C_B only changes
// with B's spikes); C_A is a count RAM. One run (one time step):
//   1. a B with spikes streams in through the port, a request every BG cycles from the
//      start: a row as read is row r of BH batches (BH = NB: every batch's row r side by
//      side, one pass for all the heads when their rows lie in the same buffer rows;
//      BH = 1: batch by batch). Each batch's C_B is a ring of its BR rows: an arriving
//      row's spikes are added to the bottom row, pushed on top (after BR rows every row
//      is back in place) and shifted into S_B. B is read as it is (K rows of M lanes) or,
//      BT = 1, as B^T (M rows of K lanes) when that view has fewer segments (the
//      transpose of k in q.k^T is then the head split of k). A silent B costs no cycle:
//      S_B is cleared. SB = 1 (a request a cycle): a producer writing B's buffer in the
//      same step, a row (as read) is requested only once b_avail is above it (the
//      engine streaming its rows, as A's below).
//   2. the A rows of every batch, b*N + n in order, stream in likewise (a request every
//      AG cycles; a silent A: a row a cycle, zero), from WAV cycles after the first (WAS
//      for a silent A; none after a silent B): the lowering times them so that the first
//      arrives no earlier than B's last (and, A and B one RAM, is asked for after it).
//      SB = 1: the phase begins no earlier than WAV - BQ_LAST cycles (WAS - ...) after
//      the last B request, nor (beginning before it) before B's rows are all written:
//      the requests left are then a cycle apart.
//      On its arrival row b*N + n's C_A(t-1) is read from the RAM, the cycle after the
//      output row is the sum above over batch b's C_B and S_B, and C_A(b, n) += S_A(b, n)
//      is written. A row is requested only once a_avail is above it: a producer writing
//      A's buffer in the same step (the rows it has written, the engine streaming them);
//      otherwise a_avail is above every row (AQ < NB*N, A's buffer rows: a head split
//      whose batches read them again, a row past AQ - 1 waits for row AQ - 1). The
//      batch being written is the bottom one of the register files: as a batch's last
//      row is written they turn by a batch (NB turns a run: every batch back in place
//      for the next).
// On the first run of an inference the stored counts read as zero (a lazy reset: C_B
// cleared as the run starts, C_A read as zero).
module snn_td_matmul_rows #(
    parameter NB   = 1,    // batch (heads)
    parameter N    = 8,
    parameter K    = 4,
    parameter M    = 8,
    parameter BT   = 0,    // 1: B read as rows of B^T
    parameter BR   = 4,    // B rows a batch (K; M with BT)
    parameter BL   = 8,    // lanes of a batch's B row (M; K with BT)
    parameter BH   = 1,    // batches a B row as read holds (1 or NB)
    parameter AG   = 1,    // cycles between A row requests
    parameter BG   = 1,    // cycles between B row requests
    parameter GW   = 1,    // gap counter bits (holds max(AG, BG) - 1)
    parameter WAV  = 0,    // B with spikes: cycles from the first to the A phase's start
    parameter WAS  = 0,    // ... for a silent A
    parameter WTW  = 1,    // their counter's bits (holds max(WAV, WAS))
    parameter ARW  = 3,    // A row bits (holds NB*N - 1)
    parameter BRW  = 2,    // B row bits (holds NB*BR/BH - 1)
    parameter NW   = 3,    // n bits (holds N - 1)
    parameter RBW  = 2,    // B row-of-batch bits (holds BR - 1)
    parameter BW   = 1,    // batch bits (holds NB - 1)
    parameter WCA  = 3,    // count widths
    parameter WCB  = 3,
    parameter WO   = 10,   // output current width
    parameter LT   = 3,    // levels of an output lane's adder tree (2K <= 2^LT)
    parameter SB   = 0,    // 1: B's rows streamed (b_avail; BG = 1)
    parameter AQ   = NB * N  // A's buffer rows (a_avail: rows >= AQ read row AQ - 1)
) (
    input  wire           clk,
    input  wire           rst,
    input  wire           start,
    input  wire           clear,     // a new inference begins: forget the stored state
    input  wire           a_valid,
    input  wire           b_valid,
    output reg            done,
    output reg            a_req,
    output reg  [ARW-1:0] a_row,
    input  wire           a_ack,
    input  wire [K-1:0]   a_data,
    input  wire [ARW:0]   a_avail,   // A rows that may be read (0..a_avail-1; AQ)
    output reg            b_req,
    output reg  [BRW-1:0] b_row,
    input  wire           b_ack,
    input  wire [BH*BL-1:0] b_data,
    input  wire [BRW:0]   b_avail,   // B rows (as read) that may be read (SB = 1)
    output wire           out_we,
    output wire [ARW-1:0] out_waddr,
    output wire [M*WO-1:0] out_wdata
);
    localparam integer ROW = BL * WCB;               // C_B of a B row of a batch
    localparam integer BATCH = BR * ROW;             // ... of a batch
    localparam integer SBB = BR * BL;                // S_B of a batch
    localparam integer N_LAST_I = N - 1;
    localparam [NW-1:0] N_LAST = N_LAST_I[NW-1:0];
    localparam integer BR_LAST_I = BR - 1;
    localparam [RBW-1:0] BR_LAST = BR_LAST_I[RBW-1:0];
    localparam integer BQ_LAST_I = NB * BR / BH - 1;
    localparam [BRW-1:0] BQ_LAST = BQ_LAST_I[BRW-1:0];
    localparam integer BQ_ROWS_I = NB * BR / BH;
    localparam [BRW:0] BQ_ROWS = BQ_ROWS_I[BRW:0];
    // SB = 1: cycles from the last B request to the A phase (at least none)
    localparam integer WLV_I = WAV > BQ_LAST_I ? WAV - BQ_LAST_I : 0;
    localparam integer WLS_I = WAS > BQ_LAST_I ? WAS - BQ_LAST_I : 0;
    localparam [WTW-1:0] WAIT_LV = WLV_I[WTW-1:0];
    localparam [WTW-1:0] WAIT_LS = WLS_I[WTW-1:0];
    localparam integer A_ROWS_I = NB * N;
    localparam [ARW:0] A_ROWS = A_ROWS_I[ARW:0];
    localparam integer A_LAST_I = NB * N - 1;
    localparam integer AQ_LAST_I = AQ - 1;
    localparam [ARW:0] AQ_LAST = AQ_LAST_I[ARW:0];
    localparam [ARW-1:0] A_LAST = A_LAST_I[ARW-1:0];
    localparam integer AG_GAP_I = AG - 1;
    localparam [GW-1:0] AG_GAP = AG_GAP_I[GW-1:0];
    localparam integer BG_GAP_I = BG - 1;
    localparam [GW-1:0] BG_GAP = BG_GAP_I[GW-1:0];
    localparam [WTW-1:0] WAIT_V = WAV[WTW-1:0];
    localparam [WTW-1:0] WAIT_S = WAS[WTW-1:0];
    // the 2K terms of an output lane, padded to a power of two: NT leaves, LT levels
    localparam integer NT = 1 << LT;

    // no run yet in this inference: the stored state reads as zero (a lazy reset)
    reg first;

    wire first_wake = rst | clear | done;

    always @(posedge clk) if (first_wake) first <= rst | clear;

    reg             running;
    reg [WTW-1:0]   wait_a;    // cycles to the A phase
    reg [WTW-1:0]   wait_l;    // SB = 1: ... from the last B request
    reg [GW-1:0]    b_gap;     // cycles to the next B request
    reg [GW-1:0]    a_gap;     // ... A request
    reg             b_asking;  // B requests still to issue
    reg             a_asking;  // A requests ...
    reg [BRW-1:0]   bq;        // B rows requested
    reg [RBW-1:0]   rb;        // BH = 1: the arriving row's row of its batch ...
    reg [BW-1:0]    bin;       // ... and its batch
    reg [ARW:0]     anext;     // the A row requested next
    reg             ain;       // A rows still to arrive
    reg [ARW-1:0]   arow_in;   // the arriving A row
    reg [ARW-1:0]   arow_out;  // the row being written
    reg [NW-1:0]    aout;      // its n
    reg             computing; // row arow_out's C_A arrives this cycle: write its output
    reg [K-1:0]     sa;        // its spikes
    // C_B: batch b at b*BATCH (the bottom one: the batch being written), its row r (as
    // read) at r*ROW; S_B: batch b at b*SBB, its row r at r*BL
    reg [NB*BATCH-1:0] cb;
    reg [NB*SBB-1:0] sb;
    reg [NB*BATCH-1:0] cb_next;   // ... after a B row arrives
    reg [NB*SBB-1:0] sb_next;
    reg [NB-1:0]    hit;       // the batches whose row arrives
    reg [M*WO-1:0]  sum;
    reg [ROW-1:0]   pushed;
    reg [BL-1:0]    spikes;
    reg [K*WCA-1:0] ca_next;

    wire [K*WCA-1:0] ca_rdata;
    wire [K*WCA-1:0] ca_old = first ? {K*WCA{1'b0}} : ca_rdata;
    wire             b_in = b_ack;   // a B row arrives
    wire             starting = !running && start;
    // SB = 1: B's requests are far enough on for the A phase: all made WAIT_L cycles
    // ago, or every row written and those left few enough
    wire             b_near = b_asking ? b_avail == BQ_ROWS
        && {{(32 - BRW){1'b0}}, bq} > (a_valid ? WAV : WAS) : wait_l == {WTW{1'b0}};
    wire             a_go = running && wait_a == {WTW{1'b0}}   // the A phase is on
        && (SB == 0 || b_near);
    wire             a_in = a_valid ? a_ack : (a_go && ain);
    wire [K-1:0]     a_spikes = a_valid ? a_data : {K{1'b0}};
    wire             last_n = aout == N_LAST;
    // the last buffer row that row anext reads (AQ < NB*N: the heads of a head split
    // read its rows again)
    wire [ARW:0]     a_need = AQ == NB * N || anext < AQ_LAST ? anext : AQ_LAST;

    snn_ram #(.WIDTH(K * WCA), .DEPTH(NB * N), .AW(ARW)) u_ca_ram (
        .clk(clk), .we(computing), .waddr(arow_out), .wdata(ca_next),
        .re(a_in), .raddr(arow_in), .rdata(ca_rdata));

    // Lane datapaths as loops in combinational blocks (see snn_neuron). WO > WCA, WCB.
    // An output lane's terms are selected counts (an AND), summed by a balanced tree
    // whose nodes overwrite the level below in place (Yosys narrows each node's adder
    // to the width its operands need).
    reg [NT*WO-1:0] tree;
    integer h;
    integer r;
    integer l;
    integer m;
    integer k;
    integer s;
    integer i;

    always @* begin
        // a B row's arrival: each batch it holds turns its ring by a row
        for (h = 0; h < NB; h = h + 1) begin
            hit[h] = BH != 1 || {{(32 - BW){1'b0}}, bin} == h;
            for (l = 0; l < BL; l = l + 1)
                spikes[l] = b_data[(BH != 1 ? h * BL : 0) + l];
            for (l = 0; l < BL; l = l + 1)
                pushed[l*WCB +: WCB] = cb[h*BATCH + l*WCB +: WCB]
                    + {{(WCB-1){1'b0}}, spikes[l]};
            for (r = 0; r < BR; r = r + 1) begin
                if (r == BR - 1) begin
                    cb_next[h*BATCH + r*ROW +: ROW] = pushed;
                    sb_next[h*SBB + r*BL +: BL] = spikes;
                end else begin
                    cb_next[h*BATCH + r*ROW +: ROW] = cb[h*BATCH + ((r + 1) % BR)*ROW +: ROW];
                    sb_next[h*SBB + r*BL +: BL] = sb[h*SBB + ((r + 1) % BR)*BL +: BL];
                end
            end
        end
        for (l = 0; l < K; l = l + 1)
            ca_next[l*WCA +: WCA] = ca_old[l*WCA +: WCA] + {{(WCA-1){1'b0}}, sa[l]};
        for (m = 0; m < M; m = m + 1) begin
            tree = {NT*WO{1'b0}};
            for (k = 0; k < K; k = k + 1) begin
                tree[2*k*WO +: WO] = {{(WO-WCB){1'b0}},
                    cb[(BT != 0 ? m*BL + k : k*BL + m)*WCB +: WCB] & {WCB{sa[k]}}};
                tree[(2*k+1)*WO +: WO] = {{(WO-WCA){1'b0}},
                    ca_old[k*WCA +: WCA] & {WCA{sb[BT != 0 ? m*BL + k : k*BL + m]}}};
            end
            for (s = 0; s < LT; s = s + 1)
                for (i = 0; i < (NT >> (s + 1)); i = i + 1)
                    tree[i*WO +: WO] = tree[2*i*WO +: WO] + tree[(2*i+1)*WO +: WO];
            sum[m*WO +: WO] = tree[WO-1:0];
        end
    end

    assign out_we    = computing;
    assign out_waddr = arow_out;
    assign out_wdata = sum;

    // the batches turned by one: the next one at the bottom (after all of B's rows)
    wire             turn = computing && last_n;
    wire [NB*BATCH-1:0] cb_turned;
    wire [NB*SBB-1:0] sb_turned;
    generate
        if (NB == 1) begin : g_one_batch
            assign cb_turned = cb;
            assign sb_turned = sb;
        end else begin : g_batches
            assign cb_turned = {cb[BATCH-1:0], cb[NB*BATCH-1:BATCH]};
            assign sb_turned = {sb[SBB-1:0], sb[NB*SBB-1:SBB]};
        end
    endgenerate

    // the stored counts: cleared as the first run of an inference starts, each batch's
    // ring turned by its B rows, the batches turned as each one's rows are written; S_B
    // cleared as a run with a silent B starts
    // (the clears last: a flip-flop's synchronous reset, the turn and the B row a
    // two-way selection, never at once)
    always @(posedge clk) if (starting | b_in | turn) begin
        if (b_in)
            for (h = 0; h < NB; h = h + 1)
                if (hit[h]) begin
                    cb[h*BATCH +: BATCH] <= cb_next[h*BATCH +: BATCH];
                    sb[h*SBB +: SBB] <= sb_next[h*SBB +: SBB];
                end
        if (turn && NB > 1) begin
            cb <= cb_turned;
            sb <= sb_turned;
        end
        if (starting && first) cb <= {NB*BATCH{1'b0}};
        if (starting && !b_valid) sb <= {NB*SBB{1'b0}};
    end

    // the FSM's clocked block runs only while there is something to do (an idle engine
    // costs an event-driven simulator nothing)
    wire wake = rst | start | done | running | computing;
    // a B request: the first as the run starts
    wire          b_ask = starting ? b_valid && (SB == 0 || b_avail != {(BRW + 1){1'b0}})
        : (b_asking && b_gap == {GW{1'b0}} && (SB == 0 || {1'b0, bq} < b_avail));
    wire [BRW-1:0] b_asked = starting ? {BRW{1'b0}} : bq;

    always @(posedge clk) if (wake) begin
        if (rst) begin
            running <= 1'b0;
            done <= 1'b0;
            a_req <= 1'b0;
            b_req <= 1'b0;
            computing <= 1'b0;
        end else begin
            done <= 1'b0;
            a_req <= 1'b0;
            b_req <= 1'b0;
            computing <= a_in;
            if (b_gap != {GW{1'b0}}) b_gap <= b_gap - 1'b1;
            if (a_gap != {GW{1'b0}}) a_gap <= a_gap - 1'b1;
            if (wait_a != {WTW{1'b0}}) wait_a <= wait_a - 1'b1;
            if (SB != 0 && wait_l != {WTW{1'b0}}) wait_l <= wait_l - 1'b1;
            if (b_ask) begin
                b_req <= 1'b1;
                b_gap <= BG_GAP;
                bq <= b_asked + 1'b1;
                b_asking <= b_asked != BQ_LAST;
                if (SB != 0 && b_asked == BQ_LAST) wait_l <= a_valid ? WAIT_LV : WAIT_LS;
            end else if (starting) begin
                b_asking <= SB != 0 && b_valid;   // SB = 1: row 0 not yet written
                if (SB != 0) begin
                    bq <= {BRW{1'b0}};
                    b_gap <= {GW{1'b0}};
                end
            end
            if (SB != 0 && starting && !(b_ask && BQ_LAST == {BRW{1'b0}}))
                wait_l <= {WTW{1'b0}};
            if (b_req) b_row <= b_row + 1'b1;
            if (b_in) begin
                rb <= rb == BR_LAST ? {RBW{1'b0}} : rb + 1'b1;
                if (rb == BR_LAST) bin <= bin + 1'b1;
            end
            if (a_valid && a_go && a_asking && a_gap == {GW{1'b0}} && a_need < a_avail) begin
                a_req <= 1'b1;
                a_gap <= AG_GAP;
                anext <= anext + 1'b1;
                if (anext + 1'b1 == A_ROWS) a_asking <= 1'b0;
            end
            if (a_req) a_row <= a_row + 1'b1;
            if (a_in) begin
                sa <= a_spikes;
                arow_in <= arow_in + 1'b1;
                if (arow_in == A_LAST) ain <= 1'b0;
            end
            if (computing) begin
                arow_out <= arow_out + 1'b1;
                aout <= last_n ? {NW{1'b0}} : aout + 1'b1;
                if (arow_out == A_LAST) begin
                    running <= 1'b0;
                    done <= 1'b1;
                end
            end
            if (starting) begin
                running <= 1'b1;
                wait_a <= !b_valid ? {WTW{1'b0}} : a_valid ? WAIT_V : WAIT_S;
                a_row <= {ARW{1'b0}};
                b_row <= {BRW{1'b0}};
                arow_in <= {ARW{1'b0}};
                arow_out <= {ARW{1'b0}};
                anext <= {(ARW + 1){1'b0}};
                aout <= {NW{1'b0}};
                ain <= 1'b1;
                a_asking <= 1'b1;
                a_gap <= {GW{1'b0}};
                rb <= {RBW{1'b0}};
                bin <= {BW{1'b0}};
            end
        end
    end
endmodule
