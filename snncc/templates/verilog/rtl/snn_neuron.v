// snn_neuron: R rows of D delayed integrate-and-fire (DIF) neurons, one row per step of
// its FSM, the D lanes in parallel.
//
// Per time step, for every neuron i:
//   v[i] += I[i]                                  (I is zero when in_valid is low)
//   if fire_en and n[i] < L and sign*v[i] >= theta[i][min(n[i], L-1)]:
//       spike[i] = 1, n[i] += 1                   (at most one spike per step)
// fire_en comes from the schedule: the step is at or after the firing delay t_fire.
// sign is a conditional negation (a flag in the threshold table), never a multiply.
// Threshold rows are shared: row r uses table word (r / INNER) % TROWS, which holds,
// for each lane, L thresholds of WC bits and the negate flag:
//   word = {lane D-1: {negate, theta[L-1], .., theta[0]}, .., lane 0: {...}}.
// On the first run of an inference the stored v and n read as zero (a lazy reset), so
// no clearing pass is needed. A row of counts n can be read back through dbg_* when
// idle.
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
    parameter TH_FILE = "th.hex"
) (
    input  wire            clk,
    input  wire            rst,
    input  wire            start,
    input  wire            clear,     // a new inference begins: forget the stored state
    input  wire            in_valid,
    input  wire            fire_en,
    output reg             done,
    // input current rows (an snn_port)
    output reg             in_req,
    output wire [RW-1:0]   in_row,
    input  wire            in_ack,
    input  wire [D*WI-1:0] in_data,
    // output spike rows (buffer write port)
    output wire            out_we,
    output wire [RW-1:0]   out_waddr,
    output wire [D-1:0]    out_wdata,
    // spike count read-back while idle, a row per cycle (dbg_en: this layer is read)
    input  wire            dbg_en,
    input  wire [RW-1:0]   dbg_row,
    output wire [D*NB-1:0] dbg_counts
);
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
    reg [RW-1:0]  r;
    reg [IB-1:0]  inner;
    reg [TRB-1:0] trow;

    wire [D*WV-1:0] v_rdata;
    wire [D*NB-1:0] n_rdata;
    wire [D*WV-1:0] v_row = busy ? v_rdata : {D*WV{1'b0}};  // operand isolation
    wire [D*NB-1:0] n_row = busy ? n_rdata : {D*NB{1'b0}};
    wire [D*TW-1:0] th_rdata;
    reg  [D*WV-1:0] v_wdata;
    reg  [D*NB-1:0] n_wdata;
    reg  [D-1:0]    spikes;
    wire            row_ready = waiting && settled && (in_ack || !in_valid);

    snn_ram #(.WIDTH(D * WV), .DEPTH(R), .AW(RW)) u_v (
        .clk(clk), .we(row_ready), .waddr(r), .wdata(v_wdata), .re(busy), .raddr(r),
        .rdata(v_rdata));
    snn_ram #(.WIDTH(D * NB), .DEPTH(R), .AW(RW)) u_n (
        .clk(clk), .we(row_ready), .waddr(r), .wdata(n_wdata),
        .re(busy || dbg_en), .raddr(dbg_en && !busy ? dbg_row : r), .rdata(n_rdata));
    generate
        if (TH_ASYNC != 0) begin : g_th_logic
            // a few constant words: logic, read combinationally
            snn_lut #(.WIDTH(D * TW), .DEPTH(TROWS), .AW(TRB), .FILE(TH_FILE)) u_th (
                .addr(trow), .data(th_rdata));
        end else begin : g_th_rom
            snn_rom #(.WIDTH(D * TW), .DEPTH(TROWS), .AW(TRB), .FILE(TH_FILE)) u_th (
                .clk(clk), .re(busy), .raddr(trow), .rdata(th_rdata));
        end
    endgenerate

    // Lane datapaths are loops in a combinational block (the same hardware as per-lane
    // assignments; event-driven simulators evaluate a row once). WV > WI, WC > WV, NB > 1.
    reg [WV-1:0] v_old;
    reg [WV-1:0] v_new;
    reg [NB-1:0] n_old;
    reg [LB-1:0] level;
    reg [WC-1:0] theta;
    reg [WC-1:0] v_wide;
    reg [WC-1:0] signed_v;
    reg          fire;
    integer k;
    integer j;

    always @* begin
        for (k = 0; k < D; k = k + 1) begin
            v_old = first ? {WV{1'b0}} : v_row[k*WV +: WV];
            v_new = v_old + (in_valid
                ? {{(WV-WI){in_data[k*WI+WI-1]}}, in_data[k*WI +: WI]} : {WV{1'b0}});
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

    assign dbg_counts = n_rdata;

    assign in_row    = r;
    assign out_we    = row_ready;
    assign out_waddr = r;
    assign out_wdata = spikes;

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
            settled <= waiting && !row_ready;
            if (start) begin
                // read row 0: its input (through the port), its state, its thresholds
                busy <= 1'b1;
                waiting <= 1'b1;
                in_req <= in_valid;
                r <= {RW{1'b0}};
                inner <= {IB{1'b0}};
                trow <= {TRB{1'b0}};
            end else if (row_ready) begin
                // the row is integrated and fired in this cycle; read the next one
                if (r == LAST) begin
                    waiting <= 1'b0;
                    busy <= 1'b0;
                    done <= 1'b1;
                end else begin
                    in_req <= in_valid;
                    r <= r + 1'b1;
                    if (inner == INNER_LAST) begin
                        inner <= {IB{1'b0}};
                        trow <= (trow == TROW_LAST) ? {TRB{1'b0}} : trow + 1'b1;
                    end else begin
                        inner <= inner + 1'b1;
                    end
                end
            end
        end
    end
endmodule
