// snn_dense: a spike-driven linear layer on the last axis, out[r, :] = sum_k s[r, k] W[k, :].
//
// It clears its output buffer, then walks the input spikes in order; each spike on
// input (r, k) is an event that adds weight row k into output row r, one weight per
// cycle (read-modify-write of the output buffer). No multiplier: spikes select rows.
// With ANALOG = 1 the input is integer codes instead of spikes and every non-zero code
// c adds c * W[k, :] (snn_mac): the analog first layer, the one layer that multiplies.
module snn_dense #(
    parameter R         = 1,   // rows (all leading axes)
    parameter K         = 8,   // inputs per row
    parameter M         = 8,   // outputs per row
    parameter AWI       = 3,   // input index bits (R*K entries)
    parameter AWO       = 3,   // output index bits (R*M entries)
    parameter AWW       = 6,   // weight index bits (K*M entries)
    parameter MW        = 3,   // column counter bits (holds M - 1)
    parameter WIN       = 1,   // input width: 1 for spikes, the code width if ANALOG
    parameter ANALOG    = 0,
    parameter IN_SIGNED = 0,   // analog codes are two's complement
    parameter WW        = 8,   // weight width
    parameter WO        = 16,  // output current width
    parameter W_FILE    = "w.hex"  // W[k, m] at k*M + m
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
    localparam integer IN_LAST_I = R * K - 1;
    localparam [AWI-1:0] IN_LAST = IN_LAST_I[AWI-1:0];
    localparam integer OUT_LAST_I = R * M - 1;
    localparam [AWO-1:0] OUT_LAST = OUT_LAST_I[AWO-1:0];
    localparam integer ROW_STEP_I = M;
    localparam [AWO-1:0] ROW_STEP = ROW_STEP_I[AWO-1:0];
    localparam integer K_STEP_I = M;
    localparam [AWW-1:0] K_STEP = K_STEP_I[AWW-1:0];
    localparam integer K_LAST_I = (K - 1) * M;
    localparam [AWW-1:0] K_LAST = K_LAST_I[AWW-1:0];
    localparam integer M_LAST_I = M - 1;
    localparam [MW-1:0] M_LAST = M_LAST_I[MW-1:0];

    reg [2:0]     state;
    reg [AWO-1:0] clr;
    // walk: fetch pointer f runs one element ahead of e, whose spike arrives now
    reg           fetching;
    reg           pend;
    reg [AWI-1:0] f;
    reg [AWI-1:0] e;
    reg [AWW-1:0] kb;         // k(e) * M
    reg [AWO-1:0] rb;         // r(e) * M
    // scatter of one event: issue stage, then the read-modify-write stage
    reg [AWO-1:0] oa;
    reg [AWW-1:0] wa;
    reg [MW-1:0]  m;
    reg [WIN-1:0] code;
    reg           last_event;
    reg           q;
    reg [AWO-1:0] qa;

    wire [WW-1:0] w_rdata;
    wire [WO-1:0] addend;

    snn_rom #(.WIDTH(WW), .DEPTH(K * M), .AW(AWW), .FILE(W_FILE)) u_w (
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
                        state <= S_WALK;
                        f <= {AWI{1'b0}};
                        e <= {AWI{1'b0}};
                        kb <= {AWW{1'b0}};
                        rb <= {AWO{1'b0}};
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
                        if (kb == K_LAST) begin
                            kb <= {AWW{1'b0}};
                            rb <= rb + ROW_STEP;
                        end else begin
                            kb <= kb + K_STEP;
                        end
                        if (|in_data) begin
                            state <= S_SCAT;
                            oa <= rb;
                            wa <= kb;
                            m <= {MW{1'b0}};
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
                    q <= 1'b1;
                    qa <= oa;
                    oa <= oa + 1'b1;
                    wa <= wa + 1'b1;
                    m <= m + 1'b1;
                    if (m == M_LAST) begin
                        if (last_event) begin
                            state <= S_FIN;
                        end else begin
                            state <= S_WALK;
                            fetching <= 1'b1;
                        end
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
