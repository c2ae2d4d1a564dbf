// snn_conv: a spike-driven 2-D convolution, out[o, oy, ox] = sum W[o, c, ky, kx] s[c, y, x].
//
// It clears its output buffer, then walks the input spikes [C, H, W] in order; each
// spike at (c, y, x) is an event that scatters one weight per cycle into the outputs it
// reaches: for every tap (ky, kx) and every output channel o of c's group,
// out[o, oy, ox] += W[o, c, ky, kx]. Which output row/column a tap reaches is read from
// two small tables, so strides, padding and dilation need no arithmetic:
//   TY[y*KH + ky] = {valid, oy*OW},  TX[x*KW + kx] = {valid, ox}.
// Weights are stored in scatter order: W[o, c, ky, kx] at ((c*KH + ky)*KW + kx)*OG + o%OG.
// With ANALOG = 1 the input is integer codes and a code c adds c * W (snn_mac).
module snn_conv #(
    parameter C         = 1,   // input channels
    parameter H         = 8,
    parameter W         = 8,
    parameter KH        = 3,
    parameter KW        = 3,
    parameter IG        = 1,   // input channels per group
    parameter OG        = 4,   // output channels per group
    parameter OHW       = 64,  // output plane size OH*OW
    parameter NOUT      = 256, // outputs O*OH*OW
    parameter AWI       = 6,   // input index bits (C*H*W entries)
    parameter AWO       = 8,   // output index bits (NOUT entries)
    parameter AWW       = 6,   // weight index bits (C*KH*KW*OG entries)
    parameter TYW       = 5,   // TY address bits (H*KH entries)
    parameter TXW       = 5,   // TX address bits (W*KW entries)
    parameter SW        = 2,   // small counter bits (holds IG-1, KH-1, KW-1, OG-1)
    parameter WIN       = 1,   // input width: 1 for spikes, the code width if ANALOG
    parameter ANALOG    = 0,
    parameter IN_SIGNED = 0,
    parameter WW        = 8,
    parameter WO        = 16,
    parameter W_FILE    = "w.hex",
    parameter TY_FILE   = "ty.hex",
    parameter TX_FILE   = "tx.hex"
) (
    input  wire           clk,
    input  wire           rst,
    input  wire           start,
    output reg            busy,
    output reg            done,
    output wire [AWI-1:0] in_addr,
    input  wire [WIN-1:0] in_data,
    output wire           out_we,
    output wire [AWO-1:0] out_waddr,
    output wire [WO-1:0]  out_wdata,
    output wire [AWO-1:0] out_raddr,
    input  wire [WO-1:0]  out_rdata
);
    localparam [2:0] S_IDLE = 3'd0, S_CLEAR = 3'd1, S_WALK = 3'd2, S_SCAT = 3'd3, S_FIN = 3'd4;
    localparam integer IN_LAST_I = C * H * W - 1;
    localparam [AWI-1:0] IN_LAST = IN_LAST_I[AWI-1:0];
    localparam integer OUT_LAST_I = NOUT - 1;
    localparam [AWO-1:0] OUT_LAST = OUT_LAST_I[AWO-1:0];
    localparam integer X_STEP_I = KW;
    localparam [TXW-1:0] X_STEP = X_STEP_I[TXW-1:0];
    localparam integer X_LAST_I = (W - 1) * KW;
    localparam [TXW-1:0] X_LAST = X_LAST_I[TXW-1:0];
    localparam integer Y_STEP_I = KH;
    localparam [TYW-1:0] Y_STEP = Y_STEP_I[TYW-1:0];
    localparam integer Y_LAST_I = (H - 1) * KH;
    localparam [TYW-1:0] Y_LAST = Y_LAST_I[TYW-1:0];
    localparam integer C_STEP_I = KH * KW * OG;
    localparam [AWW-1:0] C_STEP = C_STEP_I[AWW-1:0];
    localparam integer G_STEP_I = OG * OHW;
    localparam [AWO-1:0] G_STEP = G_STEP_I[AWO-1:0];
    localparam integer O_STEP_I = OHW;
    localparam [AWO-1:0] O_STEP = O_STEP_I[AWO-1:0];
    localparam integer IG_LAST_I = IG - 1;
    localparam [SW-1:0] IG_LAST = IG_LAST_I[SW-1:0];
    localparam integer OG_LAST_I = OG - 1;
    localparam [SW-1:0] OG_LAST = OG_LAST_I[SW-1:0];
    localparam integer KW_LAST_I = KW - 1;
    localparam [SW-1:0] KW_LAST = KW_LAST_I[SW-1:0];
    localparam integer KH_LAST_I = KH - 1;
    localparam [SW-1:0] KH_LAST = KH_LAST_I[SW-1:0];

    reg [2:0]     state;
    reg [AWO-1:0] clr;
    // walk over (c, y, x); f fetches one element ahead of e
    reg           fetching;
    reg           pend;
    reg [AWI-1:0] f;
    reg [AWI-1:0] e;
    reg [TXW-1:0] xb;         // x * KW
    reg [TYW-1:0] yb;         // y * KH
    reg [SW-1:0]  ci;         // channel within its group
    reg [AWW-1:0] cb;         // c * KH*KW*OG
    reg [AWO-1:0] gb;         // group * OG*OH*OW
    // scatter over (ky, kx, o)
    reg [TXW-1:0] xb_e;
    reg [TYW-1:0] ty_a;
    reg [TXW-1:0] tx_a;
    reg [AWO-1:0] gb_e;
    reg [AWO-1:0] ob;         // o%OG * OH*OW
    reg [AWW-1:0] wa;
    reg [SW-1:0]  ky;
    reg [SW-1:0]  kx;
    reg [SW-1:0]  ol;
    reg [WIN-1:0] code;
    reg           last_event;
    reg           q;
    reg [AWO-1:0] qa;

    wire [AWO:0]  ty;         // {valid, oy*OW}
    wire [AWO:0]  tx;         // {valid, ox}
    wire [AWO-1:0] target = gb_e + ob + ty[AWO-1:0] + tx[AWO-1:0];
    wire [WW-1:0] w_rdata;
    wire [WO-1:0] addend;

    snn_lut #(.WIDTH(AWO + 1), .DEPTH(H * KH), .AW(TYW), .FILE(TY_FILE)) u_ty (
        .addr(ty_a), .data(ty));
    snn_lut #(.WIDTH(AWO + 1), .DEPTH(W * KW), .AW(TXW), .FILE(TX_FILE)) u_tx (
        .addr(tx_a), .data(tx));
    snn_rom #(.WIDTH(WW), .DEPTH(C * KH * KW * OG), .AW(AWW), .FILE(W_FILE)) u_w (
        .clk(clk), .raddr(wa), .rdata(w_rdata));

    generate
        if (ANALOG) begin : g_mac
            snn_mac #(.WA(WIN), .A_SIGNED(IN_SIGNED), .WB(WW), .WP(WO)) u_mac (
                .a(code), .b(w_rdata), .p(addend));
        end else begin : g_ac
            wire [WO-1:0] w_ext;  // a spike selects the weight: no multiply
            snn_sext #(.WI(WW), .WO(WO)) u_w_ext (.x(w_rdata), .y(w_ext));
            assign addend = code[0] ? w_ext : {WO{1'b0}};
        end
    endgenerate

    assign in_addr   = f;
    assign out_raddr = target;
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
                        state <= S_WALK;
                        f <= {AWI{1'b0}};
                        e <= {AWI{1'b0}};
                        xb <= {TXW{1'b0}};
                        yb <= {TYW{1'b0}};
                        ci <= {SW{1'b0}};
                        cb <= {AWW{1'b0}};
                        gb <= {AWO{1'b0}};
                        fetching <= 1'b1;
                        pend <= 1'b0;
                    end
                end
                S_WALK: begin
                    pend <= fetching;
                    if (fetching) begin
                        f <= f + 1'b1;
                        if (f == IN_LAST) fetching <= 1'b0;
                    end
                    if (pend) begin
                        e <= e + 1'b1;
                        if (xb == X_LAST) begin
                            xb <= {TXW{1'b0}};
                            if (yb == Y_LAST) begin
                                yb <= {TYW{1'b0}};
                                cb <= cb + C_STEP;
                                if (ci == IG_LAST) begin
                                    ci <= {SW{1'b0}};
                                    gb <= gb + G_STEP;
                                end else begin
                                    ci <= ci + 1'b1;
                                end
                            end else begin
                                yb <= yb + Y_STEP;
                            end
                        end else begin
                            xb <= xb + X_STEP;
                        end
                        if (|in_data) begin
                            state <= S_SCAT;
                            xb_e <= xb;
                            ty_a <= yb;
                            tx_a <= xb;
                            gb_e <= gb;
                            ob <= {AWO{1'b0}};
                            wa <= cb;
                            ky <= {SW{1'b0}};
                            kx <= {SW{1'b0}};
                            ol <= {SW{1'b0}};
                            code <= in_data;
                            last_event <= (e == IN_LAST);
                            fetching <= 1'b0;
                            pend <= 1'b0;
                            f <= e + 1'b1;
                        end else if (e == IN_LAST) begin
                            state <= S_IDLE;
                            busy <= 1'b0;
                            done <= 1'b1;
                        end
                    end
                end
                S_SCAT: begin
                    q <= ty[AWO] && tx[AWO];
                    qa <= target;
                    wa <= wa + 1'b1;
                    if (ol == OG_LAST) begin
                        ol <= {SW{1'b0}};
                        ob <= {AWO{1'b0}};
                        if (kx == KW_LAST) begin
                            kx <= {SW{1'b0}};
                            tx_a <= xb_e;
                            if (ky == KH_LAST) begin
                                if (last_event) begin
                                    state <= S_FIN;
                                end else begin
                                    state <= S_WALK;
                                    fetching <= 1'b1;
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
                        ol <= ol + 1'b1;
                        ob <= ob + O_STEP;
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
