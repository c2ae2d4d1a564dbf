// snn_td_matmul: the temporally decomposed product of two spike tensors,
//   dP(t) = S_A(t) . C_B(t) + C_A(t-1) . S_B(t),   A [NB, N, K], B [NB, K, M] -> [NB, N, M],
// whose sum over the window is exactly C_A . C_B. C_A and C_B are running spike counts
// kept in two count RAMs (rows of K and M lanes). Binary times integer: additions only.
//
// One run (one time step), for each batch b:
//   1. for each k: read the B row (b, k) into a spike register file SB[k] and update
//      C_B(b, k) += S_B(b, k)                          (C_B(t), all M lanes at once);
//   2. for each n: read the A row (b, n) and C_A(b, n) (C_A(t-1)); walk the k whose
//      term can be non-zero, S_A[k] = 1 or (C_A[k] != 0 and SB[k] has a spike), with a
//      priority encoder: each adds
//        (S_A[k] ? C_B(b, k) : 0) + (SB[k] ? C_A[k] : 0)       over the M lanes
//      into the row accumulator; write output row (b, n); C_A(b, n) += S_A(b, n).
// A silent input (valid low) reads as zero and is not fetched; phase 1 is skipped while
// B is silent. On the first run of an inference the stored counts read as zero (a lazy
// reset).
// The spikes of the other neuron kinds (SPA for A, SPB for B; 0 unit spikes) are no more
// multiplication, and the counts go up and down with them:
//   1, signed spikes (+1/-1, two's complement in WSA/WSB = 2 bits): a term's count is
//      added or subtracted;
//   2, a number on weighted lines: each line j is its own event (slot k*2^JB + j, walked
//      by the same priority encoder), adding (S_A[k] line j ? C_B(b, k) << j : 0) +
//      (SB[k] line j ? C_A[k] << j : 0): shifts and adds.
// The count widths exceed the spike widths (WCA > WSA, WCB > WSB).
module snn_td_matmul #(
    parameter NB   = 1,    // batch (heads)
    parameter N    = 8,
    parameter K    = 4,
    parameter M    = 8,
    parameter ARW  = 3,    // A row bits (holds NB*N - 1)
    parameter BRW  = 2,    // B row bits (holds NB*K - 1)
    parameter KW   = 2,    // k bits (holds K - 1)
    parameter NW   = 3,    // n bits (holds N - 1)
    parameter BW   = 1,    // batch bits (holds NB - 1)
    parameter WCA  = 3,    // count widths
    parameter WCB  = 3,
    parameter WO   = 10,   // output current width
    parameter SPA  = 0,    // spike kinds of A and B: 0 unit, 1 signed, 2 weighted lines
    parameter SPB  = 0,
    parameter WSA  = 1,    // spike widths (bits per lane)
    parameter WSB  = 1,
    parameter JB   = 1     // line index bits (holds the lines - 1 of a lines operand)
) (
    input  wire           clk,
    input  wire           rst,
    input  wire           start,
    input  wire           clear,     // a new inference begins: forget the stored state
    input  wire           a_valid,
    input  wire           b_valid,
    output reg            done,
    output reg            a_req,
    output wire [ARW-1:0] a_row,
    input  wire           a_ack,
    input  wire [K*WSA-1:0] a_data,
    output reg            b_req,
    output wire [BRW-1:0] b_row,
    input  wire           b_ack,
    input  wire [M*WSB-1:0] b_data,
    output wire           out_we,
    output wire [ARW-1:0] out_waddr,
    output wire [M*WO-1:0] out_wdata
);
    localparam [2:0] S_IDLE = 3'd0, S_B = 3'd1, S_B_WAIT = 3'd2, S_A = 3'd3, S_A_WAIT = 3'd4,
                     S_EVENTS = 3'd5, S_WRITE = 3'd6;
    localparam integer K_LAST_I = K - 1;
    localparam [KW-1:0] K_LAST = K_LAST_I[KW-1:0];
    localparam integer N_LAST_I = N - 1;
    localparam [NW-1:0] N_LAST = N_LAST_I[NW-1:0];
    localparam integer B_LAST_I = NB - 1;
    localparam [BW-1:0] B_LAST = B_LAST_I[BW-1:0];
    localparam [BRW-1:0] K_LAST_ROW = K_LAST_I[BRW-1:0];
    localparam integer K_I = K;
    localparam [BRW-1:0] K_ROWS = K_I[BRW-1:0];
    localparam integer XB = (SPA == 2 || SPB == 2) ? JB : 0;   // line bits of an event
    localparam integer E = K << XB;                              // event slots of a row

    // no run yet in this inference: the stored state reads as zero (a lazy reset)
    reg first;

    wire first_wake = rst | clear | done;

    always @(posedge clk) if (first_wake) first <= rst | clear;

    reg [2:0]      state;
    reg            settled;    // the count row read has arrived
    reg [BW-1:0]   b;
    reg [KW-1:0]   k;          // phase 1 row
    reg [NW-1:0]   n;          // phase 2 row
    reg [ARW-1:0]  arow;       // b*N + n
    reg [BRW-1:0]  brow;       // b*K + k (phase 1), b*K (phase 2)
    reg [K*M*WSB-1:0] sb;      // the batch's S_B rows: SB[k] at k*M*WSB
    // sb with the port's row in at the top and the others one row down (with one row,
    // K = 1, there are no others: no part select of them)
    wire [K*M*WSB-1:0] sb_shifted;
    generate
        if (K == 1) begin : g_one_row
            assign sb_shifted = b_spikes;
        end else begin : g_rows
            assign sb_shifted = {b_spikes, sb[K*M*WSB-1:M*WSB]};
        end
    endgenerate
    reg [K*WSA-1:0] sa;        // the A row being walked
    reg [K*WCA-1:0] ca;        // its C_A(t-1)
    reg [E-1:0]    events;
    reg            adding;     // a C_B row arrives this cycle
    reg [KW+XB-1:0] ev_q;      // ... for this event (k, and line j)
    reg [M*WO-1:0] acc;

    wire [M*WCB-1:0] cb_rdata;
    reg  [M*WCB-1:0] cb_next;
    wire [K*WCA-1:0] ca_rdata;
    wire [K*WCA-1:0] ca_old = first ? {K*WCA{1'b0}} : ca_rdata;
    reg  [K*WCA-1:0] ca_next;
    wire [K*WSA-1:0] a_spikes = a_valid ? a_data : {K*WSA{1'b0}};
    wire [M*WSB-1:0] b_spikes = b_valid ? b_data : {M*WSB{1'b0}};
    reg  [E-1:0]     relevant;
    wire [KW+XB-1:0] event_next;
    wire [KW-1:0]    k_next = event_next[KW+XB-1:XB];
    wire [KW-1:0]    k_q = ev_q[KW+XB-1:XB];
    wire [WCA-1:0]   ca_k;
    wire [M*WSB-1:0] sb_k;
    wire [WSA-1:0]   sa_k;
    reg  [M*WO-1:0]  sum;
    wire             b_ready = state == S_B_WAIT && settled && (b_ack || !b_valid);
    wire             a_ready = state == S_A_WAIT && settled && (a_ack || !a_valid);
    wire [BRW-1:0]   k_row;
    wire [BRW-1:0]   cb_raddr = state == S_EVENTS ? brow + k_row : brow;
    // phase 1 has nothing to do while B is silent (C_B is unchanged, SB stays zero),
    // except on the first run, which writes every count
    wire [2:0]       phase_b = (b_valid || first) ? S_B : S_A;

    snn_first_one #(.N(E), .IW(KW + XB)) u_next (.x(events), .index(event_next));
    snn_zext #(.WI(KW), .WO(BRW)) u_krow (.x(k_next), .y(k_row));
    snn_lane_mux #(.N(K), .W(WCA), .IW(KW)) u_ca (.row(ca), .index(k_q), .lane(ca_k));
    snn_lane_mux #(.N(K), .W(M*WSB), .IW(KW)) u_sb (.row(sb), .index(k_q), .lane(sb_k));
    snn_lane_mux #(.N(K), .W(WSA), .IW(KW)) u_sa (.row(sa), .index(k_q), .lane(sa_k));
    snn_ram #(.WIDTH(M * WCB), .DEPTH(NB * K), .AW(BRW)) u_cb (
        .clk(clk), .we(b_ready), .waddr(brow), .wdata(cb_next),
        .re(state != S_IDLE), .raddr(cb_raddr), .rdata(cb_rdata));
    snn_ram #(.WIDTH(K * WCA), .DEPTH(NB * N), .AW(ARW)) u_ca_ram (
        .clk(clk), .we(a_ready), .waddr(arow), .wdata(ca_next),
        .re(state != S_IDLE), .raddr(arow), .rdata(ca_rdata));

    // Lane datapaths as loops in combinational blocks (see snn_neuron). WCA > WSA,
    // WCB > WSB, WO > WCA, WCB.
    integer l;

    generate
        if (SPA == 0 && SPB == 0) begin : g_unit
            // unit spikes: a spike selects a count
            always @* begin
                for (l = 0; l < M; l = l + 1) begin
                    cb_next[l*WCB +: WCB] = (first ? {WCB{1'b0}} : cb_rdata[l*WCB +: WCB])
                        + {{(WCB-1){1'b0}}, b_spikes[l]};
                    sum[l*WO +: WO] = acc[l*WO +: WO]
                        + ((adding && sa_k[0]) ? {{(WO-WCB){1'b0}}, cb_rdata[l*WCB +: WCB]} : {WO{1'b0}})
                        + ((adding && sb_k[l]) ? {{(WO-WCA){1'b0}}, ca_k} : {WO{1'b0}});
                end
                for (l = 0; l < K; l = l + 1) begin
                    ca_next[l*WCA +: WCA] = ca_old[l*WCA +: WCA] + {{(WCA-1){1'b0}}, a_spikes[l]};
                    relevant[l] = a_spikes[l]
                        || (ca_old[l*WCA +: WCA] != {WCA{1'b0}} && sb[l*M +: M] != {M{1'b0}});
                end
            end
        end else begin : g_spikes
            // signed spikes or numbers on lines: the term of event (k, j) is
            // +-(S_A[k] line j ? C_B[k] << j : 0) +-(SB[k][m] line j ? C_A[k] << j : 0)
            localparam integer NL = 1 << XB;  // slots per lane
            localparam [NL-1:0] LINE0 = 1;
            reg  [E-1:0]      a_slots;     // the arriving A row's events
            reg  [E-1:0]      b_slots;     // k has a B spike on line j, at slot (k, j)
            reg  [E-1:0]      sa_slots;    // the walked A row's events
            reg  [M*NL-1:0]   sb_lines;    // SB[k_q], lane m's lines at m*NL
            wire [JB-1:0]     line_q;      // j of the event being added
            wire [NL-1:0]     line_hot = LINE0 << line_q;
            reg  [WO-1:0]     c_b;
            reg  [WO-1:0]     c_a;
            integer j;

            if (XB > 0) begin : g_line
                assign line_q = ev_q[XB-1:0];
            end else begin : g_no_line
                assign line_q = {JB{1'b0}};
            end

            always @(posedge clk) if (a_ready) sa_slots <= a_slots;

            // the events of a spike: its lines (a number on lines), else slot 0 if non-zero
            if (SPA == 2) begin : g_a_lines
                integer ak;
                integer aj;

                always @* begin
                    a_slots = {E{1'b0}};
                    for (ak = 0; ak < K; ak = ak + 1)
                        for (aj = 0; aj < WSA; aj = aj + 1)
                            a_slots[(ak << XB) + aj] = a_spikes[ak*WSA + aj];
                end
            end else begin : g_a_lane
                integer ak;

                always @* begin
                    a_slots = {E{1'b0}};
                    for (ak = 0; ak < K; ak = ak + 1)
                        a_slots[ak << XB] = |a_spikes[ak*WSA +: WSA];
                end
            end
            if (SPB == 2) begin : g_b_lines
                integer bk;
                integer bm;
                integer bj;
                integer sm;
                integer sj;

                always @* begin
                    b_slots = {E{1'b0}};
                    for (bk = 0; bk < K; bk = bk + 1)
                        for (bm = 0; bm < M; bm = bm + 1)
                            for (bj = 0; bj < WSB; bj = bj + 1)
                                b_slots[(bk << XB) + bj] = b_slots[(bk << XB) + bj]
                                    | sb[(bk*M + bm)*WSB + bj];
                end
                always @* begin
                    sb_lines = {M*NL{1'b0}};
                    for (sm = 0; sm < M; sm = sm + 1)
                        for (sj = 0; sj < WSB; sj = sj + 1)
                            sb_lines[sm*NL + sj] = sb_k[sm*WSB + sj];
                end
            end else begin : g_b_lane
                integer bk;
                integer sm;

                always @* begin
                    b_slots = {E{1'b0}};
                    for (bk = 0; bk < K; bk = bk + 1)
                        b_slots[bk << XB] = |sb[bk*M*WSB +: M*WSB];
                end
                always @* begin
                    sb_lines = {M*NL{1'b0}};
                    for (sm = 0; sm < M; sm = sm + 1)
                        sb_lines[sm*NL] = |sb_k[sm*WSB +: WSB];
                end
            end

            always @* begin
                for (l = 0; l < M; l = l + 1) begin
                    cb_next[l*WCB +: WCB] = (first ? {WCB{1'b0}} : cb_rdata[l*WCB +: WCB])
                        + {{(WCB-WSB){SPB == 1 && b_spikes[l*WSB + WSB - 1]}},
                           b_spikes[l*WSB +: WSB]};
                    c_b = {{(WO-WCB){1'b0}}, cb_rdata[l*WCB +: WCB]};
                    c_a = {{(WO-WCA){1'b0}}, ca_k};
                    sum[l*WO +: WO] = acc[l*WO +: WO]
                        + ((adding && sa_slots[ev_q])
                           ? ((SPA == 1 && sa_k[WSA-1]) ? ~c_b + 1'b1 : c_b) << line_q
                           : {WO{1'b0}})
                        + ((adding && |(sb_lines[l*NL +: NL] & line_hot))
                           ? ((SPB == 1 && sb_k[l*WSB + WSB - 1]) ? ~c_a + 1'b1 : c_a) << line_q
                           : {WO{1'b0}});
                end
                for (l = 0; l < K; l = l + 1) begin
                    ca_next[l*WCA +: WCA] = ca_old[l*WCA +: WCA]
                        + {{(WCA-WSA){SPA == 1 && a_spikes[l*WSA + WSA - 1]}},
                           a_spikes[l*WSA +: WSA]};
                    for (j = 0; j < NL; j = j + 1)
                        relevant[(l << XB) + j] = a_slots[(l << XB) + j]
                            || (ca_old[l*WCA +: WCA] != {WCA{1'b0}} && b_slots[(l << XB) + j]);
                end
            end
        end
    endgenerate

    assign a_row     = arow;
    assign b_row     = brow;
    assign out_we    = state == S_WRITE;
    assign out_waddr = arow;
    assign out_wdata = sum;

    // the FSM's clocked block runs only while there is something to do (an idle engine
    // costs an event-driven simulator nothing)
    wire wake = rst | start | done | (state != S_IDLE);

    always @(posedge clk) if (wake) begin
        if (rst) begin
            state <= S_IDLE;
            done <= 1'b0;
            a_req <= 1'b0;
            b_req <= 1'b0;
            adding <= 1'b0;
        end else begin
            done <= 1'b0;
            a_req <= 1'b0;
            b_req <= 1'b0;
            settled <= (state == S_B_WAIT && !b_ready) || (state == S_A_WAIT && !a_ready);
            acc <= sum;
            adding <= 1'b0;
            case (state)
                S_IDLE: if (start) begin
                    state <= phase_b;
                    sb <= {K*M*WSB{1'b0}};
                    b <= {BW{1'b0}};
                    k <= {KW{1'b0}};
                    n <= {NW{1'b0}};
                    arow <= {ARW{1'b0}};
                    brow <= {BRW{1'b0}};
                end
                S_B: begin
                    // B row (b, k) through the port, C_B row (b, k) from the RAM
                    b_req <= b_valid;
                    state <= S_B_WAIT;
                end
                S_B_WAIT: if (b_ready) begin
                    sb <= sb_shifted;
                    if (k == K_LAST) begin
                        k <= {KW{1'b0}};
                        brow <= brow - K_LAST_ROW;
                        state <= S_A;
                    end else begin
                        k <= k + 1'b1;
                        brow <= brow + 1'b1;
                        state <= S_B;
                    end
                end
                S_A: begin
                    a_req <= a_valid;
                    state <= S_A_WAIT;
                end
                S_A_WAIT: if (a_ready) begin
                    sa <= a_spikes;
                    ca <= ca_old;
                    events <= relevant;
                    acc <= {M*WO{1'b0}};
                    state <= S_EVENTS;
                end
                S_EVENTS: begin
                    // one k per cycle: request its C_B row, add the previous one
                    adding <= events != {E{1'b0}};
                    ev_q <= event_next;
                    events <= events & (events - 1'b1);
                    if (events == {E{1'b0}}) state <= S_WRITE;
                end
                default: begin  // S_WRITE: output row (b, n) is sum
                    if (n == N_LAST) begin
                        n <= {NW{1'b0}};
                        if (b == B_LAST) begin
                            state <= S_IDLE;
                            done <= 1'b1;
                        end else begin
                            b <= b + 1'b1;
                            arow <= arow + 1'b1;
                            brow <= brow + K_ROWS;
                            state <= phase_b;
                        end
                    end else begin
                        n <= n + 1'b1;
                        arow <= arow + 1'b1;
                        state <= S_A;
                    end
                end
            endcase
        end
    end
endmodule
