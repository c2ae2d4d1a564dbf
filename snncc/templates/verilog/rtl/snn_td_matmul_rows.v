// snn_td_matmul_rows: the temporally decomposed product of two unit-spike tensors
// (snn_td_matmul) an output row per cycle,
//   dP(t) = S_A(t) . C_B(t) + C_A(t-1) . S_B(t),   A [NB, N, K], B [NB, K, M] -> [NB, N, M],
// every k of a row summed at once: out[m] = sum_k (S_A[k] ? C_B[k][m] : 0)
// + (S_B[k][m] ? C_A[k] : 0), 2K selected counts per output lane (additions only). The
// engine the knob picks when it allows K events per cycle; snn_td_matmul walks the
// events one per cycle.
//
// C_A and C_B are count RAMs (C_B a B row, as read, per word); S_B and C_B of the batch
// being computed are register files. One run (one time step), for each batch b:
//   1. the B rows of b stream in through the port, a request every BG cycles (BG: the
//      port's segments, answered BLAT cycles later); the row's C_B is read the cycle
//      before it arrives; the row is shifted into S_B, its C_B plus the spikes shifted
//      into the batch's C_B and written back. B is read as it is (K rows of M lanes)
//      or, BT = 1, as B^T (M rows of K lanes) when that view has fewer segments (the
//      transpose of k in q.k^T is then the head split of k). A silent B is not
//      fetched: the batch's C_B rows are read, a row a cycle, S_B is zero.
//   2. the A rows of b stream in likewise (a request every AG cycles; a silent A: a row
//      a cycle, zero): on its arrival row n's C_A(t-1) is read from the RAM, the cycle
//      after the output row is the sum above and C_A(b, n) += S_A(b, n) is written.
//      A row b*N + n is requested only once a_avail > b*N + n: a producer writing A's
//      buffer in the same step (the rows it has written, the engine streaming them);
//      otherwise a_avail is above every row.
// On the first run of an inference the stored counts read as zero (a lazy reset).
module snn_td_matmul_rows #(
    parameter NB   = 1,    // batch (heads)
    parameter N    = 8,
    parameter K    = 4,
    parameter M    = 8,
    parameter BT   = 0,    // 1: B read as rows of B^T
    parameter BR   = 4,    // B rows a batch as read (K; M with BT)
    parameter BL   = 8,    // lanes of a B row as read (M; K with BT)
    parameter AG   = 1,    // cycles between A row requests
    parameter BG   = 1,    // cycles between B row requests
    parameter BLAT = 1,    // cycles from a B row request to the row (the port's latency)
    parameter GW   = 1,    // gap counter bits (holds max(AG, BG) - 1)
    parameter ARW  = 3,    // A row bits (holds NB*N - 1)
    parameter BRW  = 2,    // B row bits (holds NB*BR - 1)
    parameter NW   = 3,    // n bits (holds N - 1)
    parameter RBW  = 2,    // B row-of-batch bits (holds BR - 1)
    parameter BW   = 1,    // batch bits (holds NB - 1)
    parameter WCA  = 3,    // count widths
    parameter WCB  = 3,
    parameter WO   = 10,   // output current width
    parameter LT   = 3     // levels of an output lane's adder tree (2K <= 2^LT)
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
    input  wire [ARW:0]   a_avail,   // A rows that may be read (0..a_avail-1)
    output reg            b_req,
    output reg  [BRW-1:0] b_row,
    input  wire           b_ack,
    input  wire [BL-1:0]  b_data,
    output wire           out_we,
    output wire [ARW-1:0] out_waddr,
    output wire [M*WO-1:0] out_wdata
);
    localparam [1:0] S_IDLE = 2'd0, S_B = 2'd1, S_A = 2'd2;
    localparam integer BATCH = BR * BL * WCB;        // C_B of a batch
    localparam integer ROW = BL * WCB;               // ... of one B row
    localparam integer N_LAST_I = N - 1;
    localparam [NW-1:0] N_LAST = N_LAST_I[NW-1:0];
    localparam integer BR_LAST_I = BR - 1;
    localparam [RBW-1:0] BR_LAST = BR_LAST_I[RBW-1:0];
    localparam integer B_LAST_I = NB - 1;
    localparam [BW-1:0] B_LAST = B_LAST_I[BW-1:0];
    localparam integer AG_GAP_I = AG - 1;
    localparam [GW-1:0] AG_GAP = AG_GAP_I[GW-1:0];
    localparam integer BG_GAP_I = BG - 1;
    localparam [GW-1:0] BG_GAP = BG_GAP_I[GW-1:0];
    // the 2K terms of an output lane, padded to a power of two: NT leaves, LT levels
    localparam integer NT = 1 << LT;

    // no run yet in this inference: the stored state reads as zero (a lazy reset)
    reg first;

    wire first_wake = rst | clear | done;

    always @(posedge clk) if (first_wake) first <= rst | clear;

    reg [1:0]       state;
    reg [BW-1:0]    b;
    reg [GW-1:0]    gap;       // cycles to the next request
    reg             asking;    // requests of the phase still to issue
    reg [RBW-1:0]   bq;        // B rows requested (phase 1)
    reg [RBW-1:0]   bn;        // C_B rows read (phase 1)
    reg [RBW-1:0]   bgot;      // B rows arrived
    reg [NW-1:0]    aq;        // A rows requested (phase 2)
    reg [ARW:0]     anext;     // the A row requested next, b*N + aq
    reg [NW-1:0]    agot;      // A rows arrived
    reg             ain;       // rows still to arrive (phase 2)
    reg [NW-1:0]    aout;      // A rows written
    reg [ARW-1:0]   arow_in;   // the arriving A row, b*N + agot
    reg [ARW-1:0]   arow_out;  // the row being written
    reg             computing; // row arow_out's C_A arrives this cycle: write its output
    reg [K-1:0]     sa;        // its spikes
    reg [BATCH-1:0] cb_now;    // C_B of batch b, B row r (as read) at r*ROW
    reg [BR*BL-1:0] sb;        // S_B of batch b, B row r at r*BL
    reg [BRW-1:0]   brd;       // the C_B row read next (b*BR + r)
    reg [BRW-1:0]   bwr;       // the C_B row arriving
    reg             reading;   // a silent B: C_B rows still to read
    reg             brd_q;     // ... one was read in the last cycle
    reg [M*WO-1:0]  sum;
    reg [ROW-1:0]   pushed;    // the arriving row's C_B with its spikes added
    reg [K*WCA-1:0] ca_next;

    wire [K*WCA-1:0] ca_rdata;
    wire [K*WCA-1:0] ca_old = first ? {K*WCA{1'b0}} : ca_rdata;
    wire [ROW-1:0]   cb_rdata;
    wire             b_rd;     // the C_B row brd is read this cycle
    wire             b_in = b_valid ? b_ack : brd_q;   // a B row arrives
    wire             a_in = a_valid ? a_ack : (state == S_A && ain);
    wire [K-1:0]     a_spikes = a_valid ? a_data : {K{1'b0}};
    wire             last_row = aout == N_LAST;

    snn_ram #(.WIDTH(ROW), .DEPTH(NB * BR), .AW(BRW)) u_cb_ram (
        .clk(clk), .we(b_in), .waddr(bwr), .wdata(pushed),
        .re(b_rd), .raddr(brd), .rdata(cb_rdata));
    snn_ram #(.WIDTH(K * WCA), .DEPTH(NB * N), .AW(ARW)) u_ca_ram (
        .clk(clk), .we(computing), .waddr(arow_out), .wdata(ca_next),
        .re(a_in), .raddr(arow_in), .rdata(ca_rdata));

    // Lane datapaths as loops in combinational blocks (see snn_neuron). WO > WCA, WCB.
    // An output lane's terms are selected counts (an AND), summed by a balanced tree
    // whose nodes overwrite the level below in place (Yosys narrows each node's adder
    // to the width its operands need).
    reg [NT*WO-1:0] tree;
    integer l;
    integer m;
    integer k;
    integer s;
    integer i;

    always @* begin
        for (l = 0; l < BL; l = l + 1)
            pushed[l*WCB +: WCB] = (first ? {WCB{1'b0}} : cb_rdata[l*WCB +: WCB])
                + {{(WCB-1){1'b0}}, b_valid && b_data[l]};
        for (l = 0; l < K; l = l + 1)
            ca_next[l*WCA +: WCA] = ca_old[l*WCA +: WCA] + {{(WCA-1){1'b0}}, sa[l]};
        for (m = 0; m < M; m = m + 1) begin
            tree = {NT*WO{1'b0}};
            for (k = 0; k < K; k = k + 1) begin
                tree[2*k*WO +: WO] = {{(WO-WCB){1'b0}},
                    cb_now[(BT != 0 ? m*BL + k : k*BL + m)*WCB +: WCB] & {WCB{sa[k]}}};
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

    // the batch's registers after a B row arrives: shifted in from the top
    wire [BATCH-1:0] cb_row;
    wire [BR*BL-1:0] sb_row;
    wire [BL-1:0]    b_spikes = b_valid ? b_data : {BL{1'b0}};
    generate
        if (BR == 1) begin : g_one_b
            assign cb_row = pushed;
            assign sb_row = b_spikes;
        end else begin : g_b_rows
            assign cb_row = {pushed, cb_now[BATCH-1:ROW]};
            assign sb_row = {b_spikes, sb[BR*BL-1:BL]};
        end
        // row brd's C_B is read the cycle before the port's answer (a silent B: a row a
        // cycle, arriving the cycle after)
        if (BLAT == 1) begin : g_lat1
            assign b_rd = b_valid ? b_req : reading;
        end else begin : g_lat
            reg [BLAT-2:0] seen;   // the requests the port has seen, by age
            if (BLAT == 2) begin : g_one
                always @(posedge clk) seen <= b_req;
            end else begin : g_more
                always @(posedge clk) seen <= {seen[BLAT-3:0], b_req};
            end
            assign b_rd = b_valid ? seen[BLAT-2] : reading;
        end
    endgenerate

    // the FSM's clocked block runs only while there is something to do (an idle engine
    // costs an event-driven simulator nothing)
    wire wake = rst | start | done | (state != S_IDLE) | computing | brd_q;

    always @(posedge clk) if (wake) begin
        if (rst) begin
            state <= S_IDLE;
            done <= 1'b0;
            a_req <= 1'b0;
            b_req <= 1'b0;
            computing <= 1'b0;
            reading <= 1'b0;
            brd_q <= 1'b0;
        end else begin
            done <= 1'b0;
            a_req <= 1'b0;
            b_req <= 1'b0;
            computing <= a_in;
            brd_q <= b_rd && !b_valid;
            if (b_rd) begin
                brd <= brd + 1'b1;
                bn <= bn + 1'b1;
                if (bn == BR_LAST) reading <= 1'b0;
            end
            if (b_in) begin
                bwr <= bwr + 1'b1;
                cb_now <= cb_row;
                sb <= sb_row;
            end
            if (gap != {GW{1'b0}}) gap <= gap - 1'b1;
            if (a_in) begin
                sa <= a_spikes;
                agot <= agot + 1'b1;
                arow_in <= arow_in + 1'b1;
                if (agot == N_LAST) ain <= 1'b0;
            end
            if (computing) begin
                aout <= aout + 1'b1;
                arow_out <= arow_out + 1'b1;
            end
            case (state)
                S_IDLE: if (start) begin
                    state <= S_B;
                    b <= {BW{1'b0}};
                    a_row <= {ARW{1'b0}};
                    b_row <= {BRW{1'b0}};
                    arow_in <= {ARW{1'b0}};
                    arow_out <= {ARW{1'b0}};
                    anext <= {(ARW + 1){1'b0}};
                    brd <= {BRW{1'b0}};
                    bwr <= {BRW{1'b0}};
                    asking <= 1'b1;
                    gap <= {GW{1'b0}};
                    bq <= {RBW{1'b0}};
                    bn <= {RBW{1'b0}};
                    bgot <= {RBW{1'b0}};
                    reading <= !b_valid;
                end
                S_B: begin
                    if (b_valid && asking && gap == {GW{1'b0}}) begin
                        b_req <= 1'b1;
                        gap <= BG_GAP;
                        bq <= bq + 1'b1;
                        if (bq == BR_LAST) asking <= 1'b0;
                    end
                    if (b_req) b_row <= b_row + 1'b1;
                    if (b_in) begin
                        bgot <= bgot + 1'b1;
                        if (bgot == BR_LAST) begin
                            state <= S_A;
                            asking <= 1'b1;
                            gap <= {GW{1'b0}};
                            aq <= {NW{1'b0}};
                            agot <= {NW{1'b0}};
                            ain <= 1'b1;
                            aout <= {NW{1'b0}};
                        end
                    end
                end
                default: begin  // S_A
                    if (a_valid && asking && gap == {GW{1'b0}} && anext < a_avail) begin
                        a_req <= 1'b1;
                        gap <= AG_GAP;
                        aq <= aq + 1'b1;
                        anext <= anext + 1'b1;
                        if (aq == N_LAST) asking <= 1'b0;
                    end
                    if (a_req) a_row <= a_row + 1'b1;
                    if (computing && last_row) begin
                        if (b == B_LAST) begin
                            state <= S_IDLE;
                            done <= 1'b1;
                        end else begin
                            b <= b + 1'b1;
                            state <= S_B;
                            asking <= 1'b1;
                            gap <= {GW{1'b0}};
                            bq <= {RBW{1'b0}};
                            bn <= {RBW{1'b0}};
                            bgot <= {RBW{1'b0}};
                            reading <= !b_valid;
                        end
                    end
                end
            endcase
        end
    end
endmodule
