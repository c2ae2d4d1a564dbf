// snn_td_maxpool: temporally decomposed max pooling of a spike tensor [C, H, W],
//   out(t) = maxpool(C(t)) - maxpool(C(t-1)),
// a binary spike whose sum over the window is maxpool of the final counts. C(t) is the
// running spike count of every input; P holds every output's last pooled maximum.
//
// One run (one time step): walk the input spikes, C += S (N_IN cycles); then for each
// output, read the counts under its window (one tap per cycle) and take their maximum
// m; out = (m != P), P = m. Padding taps read as zero (counts are never negative). Which
// input row/column a tap reads comes from two small tables:
//   TY[oy*KH + ky] = {valid, iy*W},  TX[ox*KW + kx] = {valid, ix}.
// On the first run of an inference the stored C and P read as zero.
module snn_td_maxpool #(
    parameter C    = 4,
    parameter H    = 8,
    parameter W    = 8,
    parameter OH   = 4,
    parameter OW   = 4,
    parameter KH   = 2,
    parameter KW   = 2,
    parameter AWI  = 8,    // input index bits (C*H*W entries)
    parameter AWO  = 6,    // output index bits (C*OH*OW entries)
    parameter TYW  = 3,    // TY address bits (OH*KH entries)
    parameter TXW  = 3,    // TX address bits (OW*KW entries)
    parameter SW   = 1,    // tap counter bits (holds KH-1, KW-1)
    parameter WCNT = 3,    // count width
    parameter TY_FILE = "ty.hex",
    parameter TX_FILE = "tx.hex"
) (
    input  wire           clk,
    input  wire           rst,
    input  wire           start,
    input  wire           clear,     // a new inference begins: forget the stored state
    input  wire           in_valid,
    output reg            busy,
    output reg            done,
    output wire [AWI-1:0] in_addr,
    input  wire           in_data,
    output wire           out_we,
    output wire [AWO-1:0] out_waddr,
    output wire           out_wdata
);
    // no run yet in this inference: the stored state reads as zero (a lazy reset)
    reg first;

    always @(posedge clk) begin
        if (rst || clear) first <= 1'b1;
        else if (done) first <= 1'b0;
    end

    localparam [1:0] S_IDLE = 2'd0, S_COUNT = 2'd1, S_POOL = 2'd2, S_FIN = 2'd3;
    localparam integer IN_LAST_I = C * H * W - 1;
    localparam [AWI-1:0] IN_LAST = IN_LAST_I[AWI-1:0];
    localparam integer OUT_LAST_I = C * OH * OW - 1;
    localparam [AWO-1:0] OUT_LAST = OUT_LAST_I[AWO-1:0];
    localparam integer PLANE_I = H * W;
    localparam [AWI-1:0] PLANE = PLANE_I[AWI-1:0];
    localparam integer OX_STEP_I = KW;
    localparam [TXW-1:0] OX_STEP = OX_STEP_I[TXW-1:0];
    localparam integer OX_LAST_I = (OW - 1) * KW;
    localparam [TXW-1:0] OX_LAST = OX_LAST_I[TXW-1:0];
    localparam integer OY_STEP_I = KH;
    localparam [TYW-1:0] OY_STEP = OY_STEP_I[TYW-1:0];
    localparam integer OY_LAST_I = (OH - 1) * KH;
    localparam [TYW-1:0] OY_LAST = OY_LAST_I[TYW-1:0];
    localparam integer KW_LAST_I = KW - 1;
    localparam [SW-1:0] KW_LAST = KW_LAST_I[SW-1:0];
    localparam integer KH_LAST_I = KH - 1;
    localparam [SW-1:0] KH_LAST = KH_LAST_I[SW-1:0];

    reg [1:0]     state;
    // count walk: fetch i0, update i1 one cycle later
    reg           fetching;
    reg           pend;
    reg [AWI-1:0] i0;
    reg [AWI-1:0] i1;
    // pooling: output o = (c, oy, ox), tap (ky, kx)
    reg           issuing;
    reg [AWO-1:0] o;
    reg [TYW-1:0] oyb;        // oy * KH
    reg [TXW-1:0] oxb;        // ox * KW
    reg [AWI-1:0] cb;         // c * H*W
    reg [TYW-1:0] ty_a;
    reg [TXW-1:0] tx_a;
    reg [SW-1:0]  ky;
    reg [SW-1:0]  kx;
    // tap pipeline stage
    reg           q;
    reg           q_first;
    reg           q_last;
    reg           q_tap;
    reg [AWO-1:0] q_o;
    reg [WCNT-1:0] mx;
    reg [WCNT-1:0] prev_q;

    wire [AWI:0]  ty;         // {valid, iy*W}
    wire [AWI:0]  tx;         // {valid, ix}
    wire          tap_first = (ky == {SW{1'b0}}) && (kx == {SW{1'b0}});
    wire          tap_last  = (ky == KH_LAST) && (kx == KW_LAST);
    wire [AWI-1:0] tap_addr = cb + ty[AWI-1:0] + tx[AWI-1:0];

    wire [WCNT-1:0] cnt_rdata;
    wire [WCNT-1:0] prev_rdata;
    wire [WCNT-1:0] spike_w;
    wire [WCNT-1:0] cnt_next = (first ? {WCNT{1'b0}} : cnt_rdata) + spike_w;
    wire [WCNT-1:0] tap_val  = q_tap ? cnt_rdata : {WCNT{1'b0}};
    wire [WCNT-1:0] mx_next  = (q_first || tap_val > mx) ? tap_val : mx;
    wire [WCNT-1:0] prev_old = first ? {WCNT{1'b0}} : (q_first ? prev_rdata : prev_q);
    wire            counting = (state == S_COUNT) && pend;
    wire            pooled   = q && q_last;

    snn_zext #(.WI(1), .WO(WCNT)) u_spike (.x(in_valid && in_data), .y(spike_w));
    snn_lut #(.WIDTH(AWI + 1), .DEPTH(OH * KH), .AW(TYW), .FILE(TY_FILE)) u_ty (
        .addr(ty_a), .data(ty));
    snn_lut #(.WIDTH(AWI + 1), .DEPTH(OW * KW), .AW(TXW), .FILE(TX_FILE)) u_tx (
        .addr(tx_a), .data(tx));
    snn_ram #(.WIDTH(WCNT), .DEPTH(C * H * W), .AW(AWI)) u_count (
        .clk(clk), .we(counting), .waddr(i1), .wdata(cnt_next),
        .raddr(state == S_POOL ? tap_addr : i0), .rdata(cnt_rdata));
    snn_ram #(.WIDTH(WCNT), .DEPTH(C * OH * OW), .AW(AWO)) u_prev (
        .clk(clk), .we(pooled), .waddr(q_o), .wdata(mx_next),
        .raddr(o), .rdata(prev_rdata));

    assign in_addr  = i0;
    assign out_we   = pooled;
    assign out_waddr = q_o;
    assign out_wdata = mx_next != prev_old;

    always @(posedge clk) begin
        if (rst) begin
            state <= S_IDLE;
            busy <= 1'b0;
            done <= 1'b0;
            fetching <= 1'b0;
            pend <= 1'b0;
            issuing <= 1'b0;
            q <= 1'b0;
        end else begin
            done <= 1'b0;
            // tap pipeline (stage 2): running maximum of the taps of output q_o
            q <= 1'b0;
            if (q) begin
                mx <= mx_next;
                if (q_first) prev_q <= prev_rdata;
            end
            case (state)
                S_IDLE: if (start) begin
                    busy <= 1'b1;
                    state <= S_COUNT;
                    i0 <= {AWI{1'b0}};
                    fetching <= 1'b1;
                    pend <= 1'b0;
                end
                S_COUNT: begin
                    pend <= fetching;
                    i1 <= i0;
                    if (fetching) begin
                        i0 <= i0 + 1'b1;
                        if (i0 == IN_LAST) fetching <= 1'b0;
                    end
                    if (pend && i1 == IN_LAST) begin
                        state <= S_POOL;
                        issuing <= 1'b1;
                        o <= {AWO{1'b0}};
                        oyb <= {TYW{1'b0}};
                        oxb <= {TXW{1'b0}};
                        cb <= {AWI{1'b0}};
                        ty_a <= {TYW{1'b0}};
                        tx_a <= {TXW{1'b0}};
                        ky <= {SW{1'b0}};
                        kx <= {SW{1'b0}};
                    end
                end
                S_POOL: if (issuing) begin
                    q <= 1'b1;
                    q_first <= tap_first;
                    q_last <= tap_last;
                    q_tap <= ty[AWI] && tx[AWI];
                    q_o <= o;
                    if (kx == KW_LAST) begin
                        kx <= {SW{1'b0}};
                        tx_a <= oxb;
                        if (ky == KH_LAST) begin
                            // next output
                            ky <= {SW{1'b0}};
                            o <= o + 1'b1;
                            if (o == OUT_LAST) issuing <= 1'b0;
                            if (oxb == OX_LAST) begin
                                oxb <= {TXW{1'b0}};
                                tx_a <= {TXW{1'b0}};
                                if (oyb == OY_LAST) begin
                                    oyb <= {TYW{1'b0}};
                                    ty_a <= {TYW{1'b0}};
                                    cb <= cb + PLANE;
                                end else begin
                                    oyb <= oyb + OY_STEP;
                                    ty_a <= oyb + OY_STEP;
                                end
                            end else begin
                                oxb <= oxb + OX_STEP;
                                tx_a <= oxb + OX_STEP;
                                ty_a <= oyb;
                            end
                        end else begin
                            ky <= ky + 1'b1;
                            ty_a <= ty_a + 1'b1;
                        end
                    end else begin
                        kx <= kx + 1'b1;
                        tx_a <= tx_a + 1'b1;
                    end
                end else begin
                    state <= S_FIN;  // the last output is written in this cycle
                end
                default: begin
                    state <= S_IDLE;
                    busy <= 1'b0;
                    done <= 1'b1;
                end
            endcase
        end
    end
endmodule
