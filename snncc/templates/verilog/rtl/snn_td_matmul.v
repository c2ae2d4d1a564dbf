// snn_td_matmul: the temporally decomposed product of two spike tensors,
//   dP(t) = S_A(t) . C_B(t) + C_A(t-1) . S_B(t),   A [NB, N, K], B [NB, K, M] -> [NB, N, M],
// whose sum over the window is exactly C_A . C_B. C_A and C_B are running spike counts
// kept in two count RAMs. Binary times integer: additions only.
//
// One run (one time step): clear the output buffer; walk S_B: every spike (b, k, m)
// adds column k of C_A(t-1) into column m of the output, and C_B += S_B; then walk
// S_A: every spike (b, n, k) adds row k of C_B(t) into row n, and C_A += S_A.
// A phase whose input is silent this step is skipped, except on the first run of an
// inference, where both walks rewrite every count (C(t-1) reads as zero).
module snn_td_matmul #(
    parameter NB   = 1,    // batch (heads)
    parameter N    = 8,
    parameter K    = 4,
    parameter M    = 8,
    parameter AWA  = 5,    // A index bits (NB*N*K entries)
    parameter AWB  = 5,    // B index bits (NB*K*M entries)
    parameter AWO  = 6,    // output index bits (NB*N*M entries)
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
    output reg            busy,
    output reg            done,
    output wire           a_en,      // reading A (A and B may share one buffer)
    output wire [AWA-1:0] a_addr,
    input  wire           a_data,
    output wire           b_en,      // reading B
    output wire [AWB-1:0] b_addr,
    input  wire           b_data,
    output wire           out_we,
    output wire [AWO-1:0] out_waddr,
    output wire [WO-1:0]  out_wdata,
    output wire [AWO-1:0] out_raddr,
    input  wire [WO-1:0]  out_rdata
);
    // no run yet in this inference: the stored state reads as zero (a lazy reset)
    reg first;

    always @(posedge clk) begin
        if (rst || clear) first <= 1'b1;
        else if (done) first <= 1'b0;
    end

    localparam [2:0] S_IDLE = 3'd0, S_CLEAR = 3'd1, S_WALK_B = 3'd2, S_SCAT_B = 3'd3,
                     S_WALK_A = 3'd4, S_SCAT_A = 3'd5, S_FIN = 3'd6;
    localparam integer OUT_LAST_I = NB * N * M - 1;
    localparam [AWO-1:0] OUT_LAST = OUT_LAST_I[AWO-1:0];
    localparam integer A_LAST_I = NB * N * K - 1;
    localparam [AWA-1:0] A_LAST = A_LAST_I[AWA-1:0];
    localparam integer B_LAST_I = NB * K * M - 1;
    localparam [AWB-1:0] B_LAST = B_LAST_I[AWB-1:0];
    // walk over B (b, k, m): m runs fastest
    localparam integer M_LAST_O_I = M - 1;  // m as an output column
    localparam [AWO-1:0] M_LAST_O = M_LAST_O_I[AWO-1:0];
    localparam integer KM_I = K * M;
    localparam [AWB-1:0] KM = KM_I[AWB-1:0];
    localparam integer NM_I = N * M;
    localparam [AWO-1:0] NM = NM_I[AWO-1:0];
    localparam integer NK_I = N * K;
    localparam [AWA-1:0] NK = NK_I[AWA-1:0];
    localparam integer K_A_I = K;  // column stride of C_A
    localparam [AWA-1:0] K_A = K_A_I[AWA-1:0];
    localparam integer M_O_I = M;  // row stride of the output
    localparam [AWO-1:0] M_O = M_O_I[AWO-1:0];
    localparam integer M_B_I = M;  // row stride of C_B
    localparam [AWB-1:0] M_B = M_B_I[AWB-1:0];
    localparam integer K_LAST_A_I = K - 1;
    localparam [AWA-1:0] K_LAST_A = K_LAST_A_I[AWA-1:0];
    localparam integer N_LAST_O_I = N - 1;
    localparam [AWO-1:0] N_LAST_O = N_LAST_O_I[AWO-1:0];
    localparam integer KM_LAST_I = (K - 1) * M;
    localparam [AWB-1:0] KM_LAST = KM_LAST_I[AWB-1:0];

    reg [2:0]     state;
    reg [AWO-1:0] clr;
    reg           fetching;
    reg           pend;
    reg           last_event;
    // phase B walk: element (b, k, m)
    reg [AWB-1:0] fb;
    reg [AWB-1:0] eb;
    reg [AWO-1:0] mcol;       // m
    reg [AWB-1:0] kmb;        // k * M within the batch
    reg [AWA-1:0] kcol;       // k
    reg [AWO-1:0] ob;         // b * N*M
    reg [AWA-1:0] ab;         // b * N*K
    // phase A walk: element (b, n, k)
    reg [AWA-1:0] fa;
    reg [AWA-1:0] ea;
    reg [AWA-1:0] kk;         // k
    reg [AWB-1:0] kmr;        // k * M
    reg [AWO-1:0] orow;       // (b*N + n) * M
    reg [AWB-1:0] bb;         // b * K*M
    reg [AWO-1:0] nn;         // n
    // scatter
    reg [AWO-1:0] oa;
    reg [AWA-1:0] caa;
    reg [AWB-1:0] cba;
    reg [AWO-1:0] cnt;        // n (phase B) or m (phase A)
    reg           q;
    reg           q_from_a;   // the addend comes from C_A (phase B) or C_B (phase A)
    reg [AWO-1:0] qa;

    wire [WCA-1:0] ca_rdata;
    wire [WCB-1:0] cb_rdata;
    wire [WO-1:0]  ca_ext;
    wire [WO-1:0]  cb_ext;
    wire [WO-1:0]  addend = q_from_a ? (first ? {WO{1'b0}} : ca_ext) : cb_ext;
    // count updates during the walks: C += S (the old count reads as zero on the first run)
    wire           sb = b_valid && b_data;
    wire           sa = a_valid && a_data;
    wire [WCB-1:0] sb_w;
    wire [WCA-1:0] sa_w;
    wire [WCB-1:0] cb_next = (first ? {WCB{1'b0}} : cb_rdata) + sb_w;
    wire [WCA-1:0] ca_next = (first ? {WCA{1'b0}} : ca_rdata) + sa_w;
    wire           walk_b = (state == S_WALK_B) && pend;
    wire           walk_a = (state == S_WALK_A) && pend;

    snn_zext #(.WI(1), .WO(WCB)) u_sb (.x(sb), .y(sb_w));
    snn_zext #(.WI(1), .WO(WCA)) u_sa (.x(sa), .y(sa_w));
    snn_sext #(.WI(WCA + 1), .WO(WO)) u_ca (.x({1'b0, ca_rdata}), .y(ca_ext));
    snn_sext #(.WI(WCB + 1), .WO(WO)) u_cb (.x({1'b0, cb_rdata}), .y(cb_ext));

    snn_ram #(.WIDTH(WCA), .DEPTH(NB * N * K), .AW(AWA)) u_ca_ram (
        .clk(clk), .we(walk_a), .waddr(ea), .wdata(ca_next),
        .raddr(state == S_SCAT_B ? caa : fa), .rdata(ca_rdata));
    snn_ram #(.WIDTH(WCB), .DEPTH(NB * K * M), .AW(AWB)) u_cb_ram (
        .clk(clk), .we(walk_b), .waddr(eb), .wdata(cb_next),
        .raddr(state == S_SCAT_A ? cba : fb), .rdata(cb_rdata));

    assign a_en      = state == S_WALK_A;
    assign a_addr    = fa;
    assign b_en      = state == S_WALK_B;
    assign b_addr    = fb;
    assign out_raddr = oa;
    assign out_we    = (state == S_CLEAR) || q;
    assign out_waddr = (state == S_CLEAR) ? clr : qa;
    assign out_wdata = (state == S_CLEAR) ? {WO{1'b0}} : out_rdata + addend;

    always @(posedge clk) begin
        if (rst) begin
            state <= S_IDLE;
            busy <= 1'b0;
            done <= 1'b0;
            q <= 1'b0;
            fetching <= 1'b0;
            pend <= 1'b0;
        end else begin
            done <= 1'b0;
            q <= 1'b0;
            case (state)
                S_IDLE: if (start) begin
                    busy <= 1'b1;
                    clr <= {AWO{1'b0}};
                    state <= S_CLEAR;
                end
                S_CLEAR: begin
                    clr <= clr + 1'b1;
                    if (clr == OUT_LAST) begin
                        fb <= {AWB{1'b0}};
                        eb <= {AWB{1'b0}};
                        mcol <= {AWO{1'b0}};
                        kmb <= {AWB{1'b0}};
                        kcol <= {AWA{1'b0}};
                        ob <= {AWO{1'b0}};
                        ab <= {AWA{1'b0}};
                        fa <= {AWA{1'b0}};
                        ea <= {AWA{1'b0}};
                        kk <= {AWA{1'b0}};
                        kmr <= {AWB{1'b0}};
                        orow <= {AWO{1'b0}};
                        bb <= {AWB{1'b0}};
                        nn <= {AWO{1'b0}};
                        pend <= 1'b0;
                        if (b_valid || first) begin
                            state <= S_WALK_B;
                            fetching <= 1'b1;
                        end else if (a_valid) begin
                            state <= S_WALK_A;
                            fetching <= 1'b1;
                        end else begin
                            state <= S_FIN;
                        end
                    end
                end
                S_WALK_B: begin
                    pend <= fetching;
                    if (fetching) begin
                        fb <= fb + 1'b1;
                        if (fb == B_LAST) fetching <= 1'b0;
                    end
                    if (pend) begin
                        // advance (b, k, m)
                        eb <= eb + 1'b1;
                        if (mcol == M_LAST_O) begin
                            mcol <= {AWO{1'b0}};
                            if (kmb == KM_LAST) begin
                                kmb <= {AWB{1'b0}};
                                kcol <= {AWA{1'b0}};
                                ob <= ob + NM;
                                ab <= ab + NK;
                            end else begin
                                kmb <= kmb + M_B;
                                kcol <= kcol + 1'b1;
                            end
                        end else begin
                            mcol <= mcol + 1'b1;
                        end
                        if (sb) begin
                            // column k of C_A into column m of the output, over n
                            state <= S_SCAT_B;
                            oa <= ob + mcol;
                            caa <= ab + kcol;
                            cnt <= {AWO{1'b0}};
                            last_event <= (eb == B_LAST);
                            fetching <= 1'b0;
                            pend <= 1'b0;
                            fb <= eb + 1'b1;
                        end else if (eb == B_LAST) begin
                            state <= (a_valid || first) ? S_WALK_A : S_FIN;
                            fetching <= 1'b1;
                        end
                    end
                end
                S_SCAT_B: begin
                    q <= 1'b1;
                    q_from_a <= 1'b1;
                    qa <= oa;
                    oa <= oa + M_O;
                    caa <= caa + K_A;
                    cnt <= cnt + 1'b1;
                    if (cnt == N_LAST_O) begin
                        if (last_event) begin
                            state <= (a_valid || first) ? S_WALK_A : S_FIN;
                        end else begin
                            state <= S_WALK_B;
                        end
                        fetching <= 1'b1;
                    end
                end
                S_WALK_A: begin
                    pend <= fetching;
                    if (fetching) begin
                        fa <= fa + 1'b1;
                        if (fa == A_LAST) fetching <= 1'b0;
                    end
                    if (pend) begin
                        // advance (b, n, k)
                        ea <= ea + 1'b1;
                        if (kk == K_LAST_A) begin
                            kk <= {AWA{1'b0}};
                            kmr <= {AWB{1'b0}};
                            orow <= orow + M_O;
                            if (nn == N_LAST_O) begin
                                nn <= {AWO{1'b0}};
                                bb <= bb + KM;
                            end else begin
                                nn <= nn + 1'b1;
                            end
                        end else begin
                            kk <= kk + 1'b1;
                            kmr <= kmr + M_B;
                        end
                        if (sa) begin
                            // row k of C_B into row n of the output, over m
                            state <= S_SCAT_A;
                            oa <= orow;
                            cba <= bb + kmr;
                            cnt <= {AWO{1'b0}};
                            last_event <= (ea == A_LAST);
                            fetching <= 1'b0;
                            pend <= 1'b0;
                            fa <= ea + 1'b1;
                        end else if (ea == A_LAST) begin
                            state <= S_FIN;
                        end
                    end
                end
                S_SCAT_A: begin
                    q <= 1'b1;
                    q_from_a <= 1'b0;
                    qa <= oa;
                    oa <= oa + 1'b1;
                    cba <= cba + 1'b1;
                    cnt <= cnt + 1'b1;
                    if (cnt == M_LAST_O) begin
                        state <= last_event ? S_FIN : S_WALK_A;
                        fetching <= 1'b1;
                    end
                end
                default: begin  // S_FIN: the last write completes in this cycle
                    state <= S_IDLE;
                    busy <= 1'b0;
                    done <= 1'b1;
                end
            endcase
        end
    end
endmodule
