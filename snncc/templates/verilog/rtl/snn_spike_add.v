// snn_spike_add: the adders of a spike-driven synapse engine (snn_dense, snn_conv): the
// weights of the event whose weight row arrives are added to the accumulator's low P
// lanes, by the input's spike format (SPIKE), without a multiplier:
//   0, unit spikes: a spike selects the weight row;
//   1, signed spikes (+1/-1 in WIN = 2 bits): the spike's sign says add or subtract (the
//      row's -1 spikes are kept when it arrives, in_ack; the event's is looked up);
//   2, a number on WIN weighted lines: line j of an input weighs 2^j, the row shifted by j.
// `index` and `line` name the event requested this cycle; its weights arrive (`adding`)
// the next, when the kept sign or line applies.
module snn_spike_add #(
    parameter N     = 8,   // inputs of a row
    parameter WIN   = 1,   // input width (spike bits)
    parameter IW    = 3,   // input index bits (holds N - 1)
    parameter SPIKE = 0,
    parameter JB    = 1,   // line index bits (SPIKE = 2)
    parameter P     = 8,   // lanes added per cycle
    parameter WW    = 8,   // weight width
    parameter WO    = 16   // accumulator width (> WW)
) (
    input  wire             clk,
    input  wire             in_ack,
    input  wire [N*WIN-1:0] in_data,
    input  wire [IW-1:0]    index,
    input  wire [JB-1:0]    line,
    input  wire             adding,
    input  wire [P*WW-1:0]  w_row,
    input  wire [P*WO-1:0]  acc,
    output reg  [P*WO-1:0]  part
);
    reg [WO-1:0] w_w;
    integer j;

    generate
        if (SPIKE == 1) begin : g_signed
            reg [N-1:0] negative;   // the row's -1 spikes
            reg         neg;        // ... of the event whose weight row arrives
            wire        neg_k;
            wire        unused_line = &{1'b0, line};
            integer q;

            always @(posedge clk) begin
                if (in_ack)
                    for (q = 0; q < N; q = q + 1) negative[q] <= in_data[q*WIN + WIN - 1];
                neg <= neg_k;
            end
            snn_lane_mux #(.N(N), .W(1), .IW(IW)) u_neg (
                .row(negative), .index(index), .lane(neg_k));
            always @* begin
                for (j = 0; j < P; j = j + 1) begin
                    w_w = {{(WO-WW){w_row[j*WW+WW-1]}}, w_row[j*WW +: WW]};
                    part[j*WO +: WO] = acc[j*WO +: WO]
                        + (adding ? (neg ? ~w_w + 1'b1 : w_w) : {WO{1'b0}});
                end
            end
        end else if (SPIKE == 2) begin : g_lines
            reg [JB-1:0] line_q;    // the line of the event whose weight row arrives
            wire         unused_row = &{1'b0, in_ack, in_data, index};

            always @(posedge clk) line_q <= line;
            always @* begin
                for (j = 0; j < P; j = j + 1) begin
                    w_w = {{(WO-WW){w_row[j*WW+WW-1]}}, w_row[j*WW +: WW]};
                    part[j*WO +: WO] = acc[j*WO +: WO] + (adding ? w_w << line_q : {WO{1'b0}});
                end
            end
        end else begin : g_spikes
            wire unused_event = &{1'b0, clk, in_ack, in_data, index, line};

            always @* begin
                for (j = 0; j < P; j = j + 1) begin
                    w_w = {{(WO-WW){w_row[j*WW+WW-1]}}, w_row[j*WW +: WW]};
                    part[j*WO +: WO] = acc[j*WO +: WO] + (adding ? w_w : {WO{1'b0}});
                end
            end
        end
    endgenerate
endmodule
