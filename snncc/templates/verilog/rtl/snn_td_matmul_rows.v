// snn_td_matmul_rows: the temporally decomposed product of two unit-spike tensors
// (snn_td_matmul) an output row per cycle,
//   dP(t) = S_A(t) . C_B(t) + C_A(t-1) . S_B(t),   A [NB, N, K], B [NB, K, M] -> [NB, N, M],
// every k of a row summed at once: out[m] = sum_k (S_A[k] ? C_B[k][m] : 0)
// + (S_B[k][m] ? C_A[k] : 0), 2K selected counts per output lane (additions only). The
// engine the knob picks when it allows K events per cycle; snn_td_matmul walks the
// events one per cycle.
//
// C_B of every batch is a ring of registers, a B row (as read) per ring row; S_B of the
// batch being computed a register file; C_A a count RAM of rows of K lanes. One run (one
// time step), for each batch b:
//   1. the B rows of b stream in through the port, a request every BG cycles (BG: the
//      port's segments): each is shifted into S_B and its C_B row, popped from the
//      bottom of the ring, pushed back on top with the spikes added. B is read as it is
//      (K rows of M lanes) or, BT = 1, as B^T (M rows of K lanes) when that view has
//      fewer segments (the transpose of k in q.k^T is then the head split of k). Once
//      the batch is in, its counts are the top BR rows of the ring. A silent B is not
//      fetched: the ring turns by a batch in one cycle, S_B is zero.
//   2. the A rows of b stream in likewise (a request every AG cycles; a silent A: a row
//      a cycle, zero): on its arrival row n's C_A(t-1) is read from the RAM, the cycle
//      after the output row is the sum above and C_A(b, n) += S_A(b, n) is written.
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
    parameter GW   = 1,    // gap counter bits (holds max(AG, BG) - 1)
    parameter ARW  = 3,    // A row bits (holds NB*N - 1)
    parameter BRW  = 2,    // B row bits (holds NB*BR - 1)
    parameter NW   = 3,    // n bits (holds N - 1)
    parameter RBW  = 2,    // B row-of-batch bits (holds BR - 1)
    parameter BW   = 1,    // batch bits (holds NB - 1)
    parameter WCA  = 3,    // count widths
    parameter WCB  = 3,
    parameter WO   = 10    // output current width
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
    output reg            b_req,
    output reg  [BRW-1:0] b_row,
    input  wire           b_ack,
    input  wire [BL-1:0]  b_data,
    output wire           out_we,
    output wire [ARW-1:0] out_waddr,
    output wire [M*WO-1:0] out_wdata
);
    localparam [1:0] S_IDLE = 2'd0, S_B = 2'd1, S_A = 2'd2;
    localparam integer RING = NB * BR * BL * WCB;    // C_B of every batch
    localparam integer BATCH = BR * BL * WCB;        // ... of one
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

    // no run yet in this inference: the stored state reads as zero (a lazy reset)
    reg first;

    wire first_wake = rst | clear | done;

    always @(posedge clk) if (first_wake) first <= rst | clear;

    reg [1:0]       state;
    reg [BW-1:0]    b;
    reg [GW-1:0]    gap;       // cycles to the next request
    reg             asking;    // requests of the phase still to issue
    reg [RBW-1:0]   bq;        // B rows requested (phase 1)
    reg [RBW-1:0]   bgot;      // B rows arrived
    reg [NW-1:0]    aq;        // A rows requested (phase 2)
    reg [NW-1:0]    agot;      // A rows arrived
    reg             ain;       // rows still to arrive (phase 2)
    reg [NW-1:0]    aout;      // A rows written
    reg [ARW-1:0]   arow_in;   // the arriving A row, b*N + agot
    reg [ARW-1:0]   arow_out;  // the row being written
    reg             computing; // row arow_out's C_A arrives this cycle: write its output
    reg [K-1:0]     sa;        // its spikes
    reg [RING-1:0]  cb;        // C_B rings: the top BR rows are batch b's once it is in
    reg [BR*BL-1:0] sb;        // S_B of batch b, B row r (as read) at r*BL
    reg [M*WO-1:0]  sum;
    reg [ROW-1:0]   pushed;    // the popped C_B row with the arriving spikes added
    reg [K*WCA-1:0] ca_next;

    wire [K*WCA-1:0] ca_rdata;
    wire [K*WCA-1:0] ca_old = first ? {K*WCA{1'b0}} : ca_rdata;
    wire [BATCH-1:0] cb_now = cb[RING-1:RING-BATCH];
    wire             b_in = b_valid && b_ack;
    wire             a_in = a_valid ? a_ack : (state == S_A && ain);
    wire [K-1:0]     a_spikes = a_valid ? a_data : {K{1'b0}};
    wire             last_row = aout == N_LAST;

    snn_ram #(.WIDTH(K * WCA), .DEPTH(NB * N), .AW(ARW)) u_ca_ram (
        .clk(clk), .we(computing), .waddr(arow_out), .wdata(ca_next),
        .re(a_in), .raddr(arow_in), .rdata(ca_rdata));

    // Lane datapaths as loops in combinational blocks (see snn_neuron). WO > WCA, WCB.
    integer l;
    integer m;
    integer k;

    always @* begin
        for (l = 0; l < BL; l = l + 1)
            pushed[l*WCB +: WCB] = (first ? {WCB{1'b0}} : cb[l*WCB +: WCB])
                + {{(WCB-1){1'b0}}, b_data[l]};
        for (l = 0; l < K; l = l + 1)
            ca_next[l*WCA +: WCA] = ca_old[l*WCA +: WCA] + {{(WCA-1){1'b0}}, sa[l]};
        for (m = 0; m < M; m = m + 1) begin
            sum[m*WO +: WO] = {WO{1'b0}};
            for (k = 0; k < K; k = k + 1) begin
                if (sa[k])
                    sum[m*WO +: WO] = sum[m*WO +: WO] + {{(WO-WCB){1'b0}},
                        cb_now[(BT != 0 ? m*BL + k : k*BL + m)*WCB +: WCB]};
                if (sb[BT != 0 ? m*BL + k : k*BL + m])
                    sum[m*WO +: WO] = sum[m*WO +: WO] + {{(WO-WCA){1'b0}},
                        ca_old[k*WCA +: WCA]};
            end
        end
    end

    assign out_we    = computing;
    assign out_waddr = arow_out;
    assign out_wdata = sum;

    // the ring after a B row arrives (one down, the row on top) and after a silent batch
    // (BR rows round; the first run: zero); S_B after a B row arrives
    wire [RING-1:0]  cb_row;
    wire [RING-1:0]  cb_batch;
    wire [BR*BL-1:0] sb_row;
    generate
        if (NB * BR == 1) begin : g_one_row
            assign cb_row = pushed;
        end else begin : g_rows
            assign cb_row = {pushed, cb[RING-1:ROW]};
        end
        if (NB == 1) begin : g_one_batch
            assign cb_batch = first ? {RING{1'b0}} : cb;
        end else begin : g_batches
            assign cb_batch = {first ? {BATCH{1'b0}} : cb[BATCH-1:0], cb[RING-1:BATCH]};
        end
        if (BR == 1) begin : g_one_b
            assign sb_row = b_data;
        end else begin : g_b_rows
            assign sb_row = {b_data, sb[BR*BL-1:BL]};
        end
    endgenerate

    // the FSM's clocked block runs only while there is something to do (an idle engine
    // costs an event-driven simulator nothing)
    wire wake = rst | start | done | (state != S_IDLE) | computing;

    always @(posedge clk) if (wake) begin
        if (rst) begin
            state <= S_IDLE;
            done <= 1'b0;
            a_req <= 1'b0;
            b_req <= 1'b0;
            computing <= 1'b0;
        end else begin
            done <= 1'b0;
            a_req <= 1'b0;
            b_req <= 1'b0;
            computing <= a_in;
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
                    asking <= 1'b1;
                    gap <= {GW{1'b0}};
                    bq <= {RBW{1'b0}};
                    bgot <= {RBW{1'b0}};
                end
                S_B: if (!b_valid) begin
                    // nothing to fetch: the ring turns by a batch (C_B unchanged)
                    cb <= cb_batch;
                    sb <= {BR*BL{1'b0}};
                    state <= S_A;
                    asking <= 1'b1;
                    aq <= {NW{1'b0}};
                    agot <= {NW{1'b0}};
                    ain <= 1'b1;
                    aout <= {NW{1'b0}};
                end else begin
                    if (asking && gap == {GW{1'b0}}) begin
                        b_req <= 1'b1;
                        gap <= BG_GAP;
                        bq <= bq + 1'b1;
                        if (bq == BR_LAST) asking <= 1'b0;
                    end
                    if (b_req) b_row <= b_row + 1'b1;
                    if (b_in) begin
                        cb <= cb_row;
                        sb <= sb_row;
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
                    if (a_valid && asking && gap == {GW{1'b0}}) begin
                        a_req <= 1'b1;
                        gap <= AG_GAP;
                        aq <= aq + 1'b1;
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
                            bgot <= {RBW{1'b0}};
                        end
                    end
                end
            endcase
        end
    end
endmodule
