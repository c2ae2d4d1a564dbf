// snn_dense: a spike-driven linear layer on the last axis, out[r, :] = sum_k s[r, k] W[k, :].
//
// For each row r it reads the input row (K spikes), then walks its spike events with a
// priority encoder: a spike on input k adds weight row k (all M outputs at once) into
// the row accumulator, one event per cycle; then it writes output row r. No multiplier:
// a spike selects a weight row. With ANALOG = 1 the input is integer codes and a
// non-zero code c adds c * W[k, :]: the analog first layer, the one layer that
// multiplies. WO must exceed WW (and WIN + 1 when ANALOG).
// The spikes of the other neuron kinds (SPIKE) are no more multiplication:
//   SPIKE = 1, signed spikes (+1/-1 in WIN = 2 bits): a spike adds or subtracts the row;
//   SPIKE = 2, a number on WIN weighted lines: every set line j of input k is an event
//              that adds W[k, :] << j (a shift), so the row gets s * W[k, :] in adds.
// Line events are walked in the same priority encoder, input k's lines at k*2^JB + j.
// P < M folds the outputs (the parallelism knob): an event then adds its weight row P
// lanes per cycle over M/P = 2^CB cycles, from a weight ROM of K*M/P words of P weights
// (word k*M/P + c holds lanes c*P .. c*P+P-1). The accumulator rotates by P lanes per
// cycle, so the P adders always work on its low lanes and no lane multiplexer is needed.
// Folded, the accumulator is a RAM of M/P words of P lanes (LUTRAM, not M lanes of
// flip-flops): chunk c of the event's weights is added to word c, read the cycle the
// weights are requested (the row's first event reads zeros: no clearing pass), and the
// output row is written in M/P words of P lanes, word {row, chunk} (the value buffer is
// as narrow and deep), one per cycle after the row's events.
// V > 1 (unit spikes at full width only) takes the row's V lowest events a cycle: each
// found by a priority encoder once the ones below it are cleared, their weight rows read
// from V copies of the ROM, and per output lane the V rows added to the accumulator.
module snn_dense #(
    parameter R         = 1,   // rows (all leading axes)
    parameter K         = 8,   // inputs per row
    parameter M         = 8,   // outputs per row
    parameter RW        = 1,   // row index bits
    parameter KW        = 3,   // input index bits (holds K - 1)
    parameter WIN       = 1,   // input width: 1 for spikes, the code width if ANALOG
    parameter ANALOG    = 0,
    parameter IN_SIGNED = 0,   // analog codes are two's complement
    parameter WW        = 8,   // weight width
    parameter WO        = 16,  // output current width
    parameter W_FILE    = "w.hex", // word k = {W[k, M-1], .., W[k, 0]}
    parameter SPIKE     = 0,   // spike-driven input: 0 unit, 1 signed, 2 weighted lines
    parameter JB        = 1,   // line index bits (SPIKE = 2: holds WIN - 1)
    parameter P         = M,   // output lanes per cycle (M / P a power of two)
    parameter CB        = 1,   // chunk index bits when P < M: M / P = 2^CB
    parameter OAW       = RW,  // output address bits: {row, chunk} when folded
    parameter V         = 1    // events a cycle (unit spikes, P = M)
) (
    input  wire             clk,
    input  wire             rst,
    input  wire             start,
    output reg              done,
    output reg              in_req,
    output wire [RW-1:0]    in_row,
    input  wire             in_ack,
    input  wire [K*WIN-1:0] in_data,
    output wire             out_we,
    output wire [OAW-1:0]   out_waddr,
    output wire [P*WO-1:0]  out_wdata
);
    localparam integer LAST_I = R - 1;
    localparam [RW-1:0] LAST = LAST_I[RW-1:0];
    localparam integer XB = (SPIKE == 2) ? JB : 0;   // line bits of an event index
    localparam integer E = K << XB;                   // event slots of a row
    localparam integer NC = M / P;                    // chunks of P lanes in a row
    localparam integer FB = (NC > 1) ? CB : 0;        // chunk bits of a weight address
    // a folded engine's weight ROM of 1,024 words or more: block RAM (see snn_rom)
    localparam integer WBLOCK = (NC > 1 && K * NC >= 1024) ? 1 : 0;

    reg           busy;       // between start and done
    reg           walking;    // the row's events are being added
    reg [RW-1:0]  r;
    reg [E-1:0]   events;     // inputs (or lines) of the row still to add
    reg           adding;     // a weight row arrives this cycle

    wire [KW+XB-1:0] event_k;  // the next event: input k (and line j)
    wire [KW-1:0]   k = event_k[KW+XB-1:XB];
    wire [P*WW-1:0] w_row;     // a chunk of P weights
    reg  [P*WO-1:0] part;      // the accumulator's P lanes plus the arriving weights
    wire [P*WO-1:0] acc_lo;    // the accumulator's P lanes the arriving weights add to
    reg  [E-1:0]    present;  // events of the arriving input row
    wire            row_done = walking && events == {E{1'b0}};
    wire            row_end;   // the row's last output word is written this cycle
    wire [KW+FB-1:0] w_addr;   // {input k, chunk}
    wire            chunk_last; // the event's last chunk is requested this cycle
    wire [E-1:0]    events_next; // the row's events once those requested are added

    snn_first_one #(.N(E), .IW(KW + XB)) u_next (.x(events), .index(event_k));
    snn_rom #(.WIDTH(P * WW), .DEPTH(K * NC), .AW(KW + FB), .FILE(W_FILE),
              .BLOCK(WBLOCK)) u_w (
        .clk(clk), .re(walking), .raddr(w_addr), .rdata(w_row));

    generate
        if (NC > 1) begin : g_fold
            // an event's chunks one per cycle, each added to its word of the accumulator
            // RAM; then the row's words written out, one per cycle (`flushing`)
            reg [CB-1:0]    chunk;     // requested (walking) or written out (flushing)
            reg [CB-1:0]    add_chunk; // the chunk whose weights arrive
            reg             first;     // no event of the row has requested all its chunks
            reg             flushing;
            wire [P*WO-1:0] acc_q;     // the accumulator word requested last cycle
            wire [CB-1:0]   acc_addr = flushing ? chunk + 1'b1 : chunk;

            // a read while `first` returns zero: the row's first event adds to zero and
            // a row without events writes zeros, through the read register's reset
            snn_acc_ram #(.WIDTH(P * WO), .DEPTH(NC), .AW(CB)) u_acc (
                .clk(clk), .we(adding), .waddr(add_chunk), .wdata(part),
                .re(walking | flushing), .clr(first), .raddr(acc_addr), .rdata(acc_q));

            always @(posedge clk) begin
                if (rst) begin
                    chunk <= {CB{1'b0}};
                    flushing <= 1'b0;
                end else begin
                    if ((walking && events != {E{1'b0}}) || flushing) chunk <= chunk + 1'b1;
                    if (row_done) flushing <= 1'b1;
                    else if (flushing && &chunk) flushing <= 1'b0;
                end
                add_chunk <= chunk;
                if (in_ack) first <= 1'b1;
                else if (walking && events != {E{1'b0}} && &chunk) first <= 1'b0;
            end
            assign w_addr = {k, chunk};
            assign chunk_last = &chunk;
            assign acc_lo = acc_q;
            assign row_end = flushing && &chunk;
            assign out_we = flushing;
            if (OAW > CB) begin : g_rows
                assign out_waddr = {r, chunk};
            end else begin : g_row  // one row: the word is the chunk
                assign out_waddr = chunk;
            end
            // a row without events wrote no word: it is zero
            assign out_wdata = acc_q;
        end else begin : g_whole
            reg [M*WO-1:0] acc;

            // cleared when a row arrives (a synchronous reset over the enable, as an FPGA
            // flip-flop has it: no gate per bit), then the additions
            always @(posedge clk) begin
                if (in_ack) acc <= {M*WO{1'b0}};
                else if (walking) acc <= part;
            end
            assign w_addr = k;
            assign chunk_last = 1'b1;
            assign acc_lo = acc;
            assign row_end = row_done;
            assign out_we = row_done;
            assign out_waddr = r;
            assign out_wdata = part;
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
                for (l = 0; l < K; l = l + 1)
                    for (b = 0; b < WIN; b = b + 1)
                        present[(l << XB) + b] = in_data[l*WIN + b];
            end
        end else begin : g_lane_events
            always @* begin
                for (l = 0; l < K; l = l + 1) present[l] = |in_data[l*WIN +: WIN];
            end
        end
    endgenerate

    generate
        if (ANALOG != 0) begin : g_analog
            assign events_next = events & (events - 1'b1);
            // the analog first layer: code * weight (the one place that multiplies)
            reg [K*WIN-1:0] codes;  // the row's codes, kept from the port
            reg [WIN-1:0]   code;   // the code of the event whose weight row arrives
            reg [WO-1:0]    code_w;
            reg [WO-1:0]    w_w;
            wire [WIN-1:0]  code_k;
            integer j;

            always @(posedge clk) begin
                if (in_ack) codes <= in_data;
                code <= code_k;
            end
            snn_lane_mux #(.N(K), .W(WIN), .IW(KW)) u_code (
                .row(codes), .index(k), .lane(code_k));
            always @* begin
                code_w = {{(WO-WIN){IN_SIGNED != 0 && code[WIN-1]}}, code};
                for (j = 0; j < P; j = j + 1) begin
                    w_w = {{(WO-WW){w_row[j*WW+WW-1]}}, w_row[j*WW +: WW]};
                    part[j*WO +: WO] = acc_lo[j*WO +: WO] + (adding ? code_w * w_w : {WO{1'b0}});
                end
            end
        end else if (V > 1) begin : g_events_add
            // unit spikes, V events a cycle: slot v the lowest event once the v below it
            // are cleared (slot 0 is event_k), its weight row from a copy of the ROM;
            // the rows of the slots that hold an event are added
            localparam integer MW = (V > 1) ? V - 1 : 1;
            reg [E-1:0]      x;
            reg [MW*KW-1:0]  more_k;   // the further slots' events
            reg [MW-1:0]     more_v;   // ... the slots that hold one
            reg [MW-1:0]     add_more; // ... of the rows that arrive
            wire [MW*P*WW-1:0] w_more;
            reg [WO-1:0]     w_w;
            integer          sv;
            integer          b;
            genvar           cv;

            always @* begin
                x = events & (events - 1'b1);
                more_k = {MW*KW{1'b0}};
                for (sv = 0; sv < V - 1; sv = sv + 1) begin
                    more_v[sv] = |x;
                    for (b = E - 1; b >= 0; b = b - 1)
                        if (x[b]) more_k[sv*KW +: KW] = b[KW-1:0];
                    x = x & (x - 1'b1);
                end
            end
            assign events_next = x;
            for (cv = 0; cv < V - 1; cv = cv + 1) begin : g_copy
                snn_rom #(.WIDTH(P * WW), .DEPTH(K), .AW(KW), .FILE(W_FILE)) u_w (
                    .clk(clk), .re(walking), .raddr(more_k[cv*KW +: KW]),
                    .rdata(w_more[cv*P*WW +: P*WW]));
            end
            always @(posedge clk) add_more <= more_v & {MW{walking}};
            always @* begin
                for (l = 0; l < P; l = l + 1) begin
                    w_w = {{(WO-WW){w_row[l*WW+WW-1]}}, w_row[l*WW +: WW]};
                    part[l*WO +: WO] = acc_lo[l*WO +: WO] + (adding ? w_w : {WO{1'b0}});
                    for (sv = 0; sv < V - 1; sv = sv + 1) begin
                        w_w = {{(WO-WW){w_more[(sv*P+l)*WW+WW-1]}},
                               w_more[(sv*P+l)*WW +: WW]};
                        part[l*WO +: WO] = part[l*WO +: WO]
                            + (add_more[sv] ? w_w : {WO{1'b0}});
                    end
                end
            end
        end else begin : g_spike_add
            assign events_next = events & (events - 1'b1);
            // spike-driven: a spike selects the weight row (signed: add or subtract;
            // weighted lines: shifted), no multiply
            wire [P*WO-1:0] part_w;

            snn_spike_add #(.N(K), .WIN(WIN), .IW(KW), .SPIKE(SPIKE), .JB(JB), .P(P), .WW(WW),
                            .WO(WO)) u_add (
                .clk(clk), .in_ack(in_ack), .in_data(in_data), .index(k),
                .line(event_k[JB-1:0]), .adding(adding), .w_row(w_row), .acc(acc_lo),
                .part(part_w));
            always @* part = part_w;
        end
    endgenerate

    assign in_row = r;

    // the FSM's clocked block runs only while there is something to do (an idle engine
    // costs an event-driven simulator nothing)
    wire wake = rst | start | done | (busy);

    always @(posedge clk) if (wake) begin
        if (rst) begin
            done <= 1'b0;
            busy <= 1'b0;
            walking <= 1'b0;
            in_req <= 1'b0;
            adding <= 1'b0;
        end else begin
            done <= 1'b0;
            in_req <= 1'b0;
            if (start) begin
                busy <= 1'b1;
                in_req <= 1'b1;
                r <= {RW{1'b0}};
            end
            if (in_ack) begin
                walking <= 1'b1;
                events <= present;
                adding <= 1'b0;
            end else if (walking) begin
                // one event per cycle: request its weight row, add the previous one
                adding <= events != {E{1'b0}};
                if (chunk_last) events <= events_next;
                if (row_done) begin
                    walking <= 1'b0;
                    adding <= 1'b0;
                end
            end
            if (row_end) begin
                if (r == LAST) begin
                    busy <= 1'b0;
                    done <= 1'b1;
                end else begin
                    r <= r + 1'b1;
                    in_req <= 1'b1;
                end
            end
        end
    end
endmodule
