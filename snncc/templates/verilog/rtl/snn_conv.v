// snn_conv: a spike-driven 2-D convolution on channels-last rows,
//   out[oy, ox, :] = sum over taps (ky, kx) and channels c of s[iy, ix, c] W[:, c, ky, kx].
//
// For each output position (one output row of O channels) it visits the kernel taps; for
// a tap inside the input it reads input row (iy, ix) (C spikes) and walks its spike
// events with a priority encoder: a spike on channel c adds the weight row W[:, c, ky, kx]
// (all O output channels at once, zeros outside c's group) into the accumulator, one
// event per cycle. Which input row a tap reads comes from two small tables, so strides,
// padding and dilation need no arithmetic:
//   TY[oy*KH + ky] = {valid, iy*W},  TX[ox*KW + kx] = {valid, ix}   (input width W).
// With ANALOG = 1 the input is integer codes and a code c adds c * W (the analog first
// layer, the one layer that multiplies). WO must exceed WW (and WIN + 1 when ANALOG).
// The spikes of the other neuron kinds (SPIKE), as in snn_dense: signed spikes (1) add or
// subtract the row; a number on WIN weighted lines (2) is one event per set line j, which
// adds the row shifted by j (channel c's lines at event slots c*2^JB + j).
// P < O folds the output channels (the parallelism knob), as in snn_dense: an event adds
// its weight row P lanes per cycle over O/P = 2^CB cycles (word a*O/P + c of the weight
// ROM holds lanes c*P .. c*P+P-1 of row a) into an accumulator RAM of O/P words of P
// lanes (word c: lanes c*P ..; the position's first event reads zeros), and the output
// row is written in O/P words of P lanes, word {output row, chunk}, one per cycle.
module snn_conv #(
    parameter C         = 1,   // input rows are (y, x), C channels each
    parameter OH        = 8,   // output rows are (oy, ox), O channels each
    parameter OW        = 8,
    parameter O         = 4,
    parameter KH        = 3,
    parameter KW        = 3,
    parameter IRW       = 6,   // input row bits
    parameter ORW       = 6,   // output row bits
    parameter CW        = 1,   // channel index bits (holds C - 1)
    parameter AWW       = 4,   // weight word bits (holds KH*KW*C - 1)
    parameter TYW       = 5,   // TY address bits
    parameter TXW       = 5,   // TX address bits
    parameter SW        = 2,   // tap counter bits (holds KH - 1, KW - 1)
    parameter WIN       = 1,   // input width: 1 for spikes, the code width if ANALOG
    parameter ANALOG    = 0,
    parameter IN_SIGNED = 0,
    parameter WW        = 8,
    parameter WO        = 16,
    parameter W_FILE    = "w.hex",   // word (ky*KW + kx)*C + c = {W[O-1, c, ky, kx], ..}
    parameter TY_FILE   = "ty.hex",
    parameter TX_FILE   = "tx.hex",
    parameter SPIKE     = 0,   // spike-driven input: 0 unit, 1 signed, 2 weighted lines
    parameter JB        = 1,   // line index bits (SPIKE = 2: holds WIN - 1)
    parameter P         = O,   // output lanes per cycle (O / P a power of two)
    parameter CB        = 1,   // chunk index bits when P < O: O / P = 2^CB
    parameter OAW       = ORW  // output address bits: {output row, chunk} when folded
) (
    input  wire             clk,
    input  wire             rst,
    input  wire             start,
    output reg              done,
    output reg              in_req,
    output wire [IRW-1:0]   in_row,
    input  wire             in_ack,
    input  wire [C*WIN-1:0] in_data,
    output wire             out_we,
    output wire [OAW-1:0]   out_waddr,
    output wire [P*WO-1:0]  out_wdata
);
    localparam [2:0] S_IDLE = 3'd0, S_TAP = 3'd1, S_WAIT = 3'd2, S_EVENTS = 3'd3,
                     S_WRITE = 3'd4;
    localparam integer OUT_LAST_I = OH * OW - 1;
    localparam [ORW-1:0] OUT_LAST = OUT_LAST_I[ORW-1:0];
    localparam integer OX_STEP_I = KW;
    localparam [TXW-1:0] OX_STEP = OX_STEP_I[TXW-1:0];
    localparam integer OX_LAST_I = (OW - 1) * KW;
    localparam [TXW-1:0] OX_LAST = OX_LAST_I[TXW-1:0];
    localparam integer OY_STEP_I = KH;
    localparam [TYW-1:0] OY_STEP = OY_STEP_I[TYW-1:0];
    localparam integer TAP_STEP_I = C;
    localparam [AWW-1:0] TAP_STEP = TAP_STEP_I[AWW-1:0];
    localparam integer KH_LAST_I = KH - 1;
    localparam [SW-1:0] KH_LAST = KH_LAST_I[SW-1:0];
    localparam integer KW_LAST_I = KW - 1;
    localparam [SW-1:0] KW_LAST = KW_LAST_I[SW-1:0];
    localparam integer XB = (SPIKE == 2) ? JB : 0;   // line bits of an event index
    localparam integer E = C << XB;                   // event slots of an input row
    localparam integer NC = O / P;                    // chunks of P lanes in a row
    localparam integer FB = (NC > 1) ? CB : 0;        // chunk bits of a weight address
    // a folded engine's weight ROM of 1,024 words or more: block RAM (see snn_rom)
    localparam integer WBLOCK = (NC > 1 && KH * KW * C * NC >= 1024) ? 1 : 0;

    reg [2:0]      state;
    reg [ORW-1:0]  orow;       // output row (oy, ox)
    reg [TYW-1:0]  oyb;        // oy * KH
    reg [TXW-1:0]  oxb;        // ox * KW
    reg [SW-1:0]   ky;
    reg [SW-1:0]   kx;
    reg [TYW-1:0]  ty_a;
    reg [TXW-1:0]  tx_a;
    reg [AWW-1:0]  tap_base;   // (ky*KW + kx) * C
    reg [E-1:0]    events;
    reg            adding;     // a weight row arrives this cycle

    wire [IRW:0]    ty;        // {valid, iy*W}
    wire [IRW:0]    tx;        // {valid, ix}
    wire [CW+XB-1:0] event_c;  // the next event: channel c (and line j)
    wire [CW-1:0]   c = event_c[CW+XB-1:XB];
    wire [AWW-1:0]  c_w;
    wire [P*WW-1:0] w_row;     // a chunk of P weights
    reg  [P*WO-1:0] part;      // the accumulator's P lanes plus the arriving weights
    wire [P*WO-1:0] acc_lo;    // the accumulator's P lanes the arriving weights add to
    wire            write_end; // the output row's last word is written this cycle
    wire [AWW+FB-1:0] w_addr;  // {weight row, chunk}
    wire            chunk_last; // the event's last chunk is requested this cycle
    reg  [E-1:0]    present;
    wire            last_tap = ky == KH_LAST && kx == KW_LAST;

    snn_lut #(.WIDTH(IRW + 1), .DEPTH(OH * KH), .AW(TYW), .FILE(TY_FILE)) u_ty (
        .addr(ty_a), .data(ty));
    snn_lut #(.WIDTH(IRW + 1), .DEPTH(OW * KW), .AW(TXW), .FILE(TX_FILE)) u_tx (
        .addr(tx_a), .data(tx));
    snn_first_one #(.N(E), .IW(CW + XB)) u_next (.x(events), .index(event_c));
    snn_zext #(.WI(CW), .WO(AWW)) u_c (.x(c), .y(c_w));
    snn_rom #(.WIDTH(P * WW), .DEPTH(KH * KW * C * NC), .AW(AWW + FB), .FILE(W_FILE),
              .BLOCK(WBLOCK)) u_w (
        .clk(clk), .re(state == S_EVENTS), .raddr(w_addr), .rdata(w_row));

    generate
        if (NC > 1) begin : g_fold
            // an event's chunks one per cycle, each added to its word of the accumulator
            // RAM; in S_WRITE the output row's words are written, one per cycle
            reg [CB-1:0]    chunk;     // requested (S_EVENTS) or written (S_WRITE)
            reg [CB-1:0]    add_chunk; // the chunk whose weights arrive
            reg             first;     // no event of the position has requested all its chunks
            wire [P*WO-1:0] acc_q;     // the accumulator word requested last cycle
            wire            writing = state == S_WRITE;
            wire [CB-1:0]   acc_addr = writing ? chunk + 1'b1 : chunk;
            wire            stepping = (state == S_EVENTS && events != {E{1'b0}}) || writing;

            // a read while `first` returns zero: the row's first event adds to zero and
            // a row without events writes zeros, through the read register's reset
            snn_acc_ram #(.WIDTH(P * WO), .DEPTH(NC), .AW(CB)) u_acc (
                .clk(clk), .we(adding), .waddr(add_chunk), .wdata(part),
                .re(state != S_IDLE), .clr(first), .raddr(acc_addr), .rdata(acc_q));

            always @(posedge clk) begin
                if (rst) chunk <= {CB{1'b0}};
                else if (stepping) chunk <= chunk + 1'b1;
                add_chunk <= chunk;
                if ((state == S_IDLE && start) || (writing && &chunk)) first <= 1'b1;
                else if (state == S_EVENTS && events != {E{1'b0}} && &chunk) first <= 1'b0;
            end
            assign w_addr = {tap_base + c_w, chunk};
            assign chunk_last = &chunk;
            assign acc_lo = acc_q;
            assign write_end = &chunk;
            if (OAW > CB) begin : g_rows
                assign out_waddr = {orow, chunk};
            end else begin : g_row  // one output row: the word is the chunk
                assign out_waddr = chunk;
            end
            // a position without events wrote no word: it is zero
            assign out_wdata = acc_q;
        end else begin : g_whole
            reg [O*WO-1:0] acc;

            // cleared at the start and after each written row, else the additions
            always @(posedge clk) begin
                if ((state == S_IDLE && start) || state == S_WRITE) acc <= {O*WO{1'b0}};
                else if (state != S_IDLE) acc <= part;
            end
            assign w_addr = tap_base + c_w;
            assign chunk_last = 1'b1;
            assign acc_lo = acc;
            assign write_end = 1'b1;
            assign out_waddr = orow;
            assign out_wdata = acc;  // written in S_WRITE, when no weights arrive
        end
    endgenerate

    // Lane datapaths are written as loops in combinational blocks: the hardware is the
    // same as per-lane continuous assignments, but event-driven simulators evaluate a
    // row once instead of re-assembling the packed row for every lane's update.
    integer l;

    generate
        if (SPIKE == 2 && ANALOG == 0) begin : g_line_events
            // every set line is an event; slots past the WIN lines stay empty
            integer b;

            always @* begin
                present = {E{1'b0}};
                for (l = 0; l < C; l = l + 1)
                    for (b = 0; b < WIN; b = b + 1)
                        present[(l << XB) + b] = in_data[l*WIN + b];
            end
        end else begin : g_lane_events
            always @* begin
                for (l = 0; l < C; l = l + 1) present[l] = |in_data[l*WIN +: WIN];
            end
        end
    endgenerate

    generate
        if (ANALOG != 0) begin : g_analog
            // the analog first layer: code * weight (the one place that multiplies)
            reg [C*WIN-1:0] codes;  // the row's codes, kept from the port
            reg [WIN-1:0]   code;   // the code of the event whose weight row arrives
            reg [WO-1:0]    code_w;
            reg [WO-1:0]    w_w;
            wire [WIN-1:0]  code_k;
            integer j;

            always @(posedge clk) begin
                if (in_ack) codes <= in_data;
                code <= code_k;
            end
            snn_lane_mux #(.N(C), .W(WIN), .IW(CW)) u_code (
                .row(codes), .index(c), .lane(code_k));
            always @* begin
                code_w = {{(WO-WIN){IN_SIGNED != 0 && code[WIN-1]}}, code};
                for (j = 0; j < P; j = j + 1) begin
                    w_w = {{(WO-WW){w_row[j*WW+WW-1]}}, w_row[j*WW +: WW]};
                    part[j*WO +: WO] = acc_lo[j*WO +: WO] + (adding ? code_w * w_w : {WO{1'b0}});
                end
            end
        end else begin : g_spike_add
            // spike-driven: a spike selects the weight row (signed: add or subtract;
            // weighted lines: shifted), no multiply
            wire [P*WO-1:0] part_w;

            snn_spike_add #(.N(C), .WIN(WIN), .IW(CW), .SPIKE(SPIKE), .JB(JB), .P(P), .WW(WW),
                            .WO(WO)) u_add (
                .clk(clk), .in_ack(in_ack), .in_data(in_data), .index(c),
                .line(event_c[JB-1:0]), .adding(adding), .w_row(w_row), .acc(acc_lo),
                .part(part_w));
            always @* part = part_w;
        end
    endgenerate

    assign in_row    = ty[IRW-1:0] + tx[IRW-1:0];
    assign out_we    = state == S_WRITE;

    // the FSM's clocked block runs only while there is something to do (an idle engine
    // costs an event-driven simulator nothing)
    wire wake = rst | start | done | (state != S_IDLE);

    always @(posedge clk) if (wake) begin
        if (rst) begin
            state <= S_IDLE;
            done <= 1'b0;
            in_req <= 1'b0;
            adding <= 1'b0;
        end else begin
            done <= 1'b0;
            in_req <= 1'b0;
            adding <= 1'b0;
            case (state)
                S_IDLE: if (start) begin
                    state <= S_TAP;
                    orow <= {ORW{1'b0}};
                    oyb <= {TYW{1'b0}};
                    oxb <= {TXW{1'b0}};
                    ty_a <= {TYW{1'b0}};
                    tx_a <= {TXW{1'b0}};
                    ky <= {SW{1'b0}};
                    kx <= {SW{1'b0}};
                    tap_base <= {AWW{1'b0}};
                end
                S_TAP: if (ty[IRW] && tx[IRW]) begin
                    in_req <= 1'b1;
                    state <= S_WAIT;
                end else begin
                    next_tap();
                end
                S_WAIT: if (in_ack) begin
                    events <= present;
                    state <= S_EVENTS;
                end
                S_EVENTS: begin
                    // one event per cycle: request its weight row, add the previous one
                    adding <= events != {E{1'b0}};
                    if (chunk_last) events <= events & (events - 1'b1);
                    if (events == {E{1'b0}}) next_tap();
                end
                default: if (write_end) begin  // S_WRITE: output row orow written; next position
                    ky <= {SW{1'b0}};
                    kx <= {SW{1'b0}};
                    tap_base <= {AWW{1'b0}};
                    if (orow == OUT_LAST) begin
                        state <= S_IDLE;
                        done <= 1'b1;
                    end else begin
                        state <= S_TAP;
                        orow <= orow + 1'b1;
                        if (oxb == OX_LAST) begin
                            oxb <= {TXW{1'b0}};
                            tx_a <= {TXW{1'b0}};
                            oyb <= oyb + OY_STEP;
                            ty_a <= oyb + OY_STEP;
                        end else begin
                            oxb <= oxb + OX_STEP;
                            tx_a <= oxb + OX_STEP;
                            ty_a <= oyb;
                        end
                    end
                end
            endcase
        end
    end

    // advance to the next kernel tap, or to the write of the output row
    task next_tap;
        begin
            tap_base <= tap_base + TAP_STEP;
            if (last_tap) begin
                state <= S_WRITE;
            end else begin
                state <= S_TAP;
                if (kx == KW_LAST) begin
                    kx <= {SW{1'b0}};
                    tx_a <= oxb;
                    ky <= ky + 1'b1;
                    ty_a <= ty_a + 1'b1;
                end else begin
                    kx <= kx + 1'b1;
                    tx_a <= tx_a + 1'b1;
                end
            end
        end
    endtask
endmodule
