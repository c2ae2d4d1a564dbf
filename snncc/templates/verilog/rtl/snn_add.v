// snn_add: the residual stream, out[r, :] = a[r, :] + b[r, :] (currents of two branches,
// all D lanes at once). A silent input (its valid flag low this step) reads as zero and
// is not fetched.
// The rows are streamed: a slot every P cycles requests row r of a and, DAB cycles
// later, row r of b; a's row is kept when it arrives (or taken as it arrives, if b's
// comes in the same cycle) and the sum is written when b's arrives (a's, when b is
// silent; the slot's next cycle when both are). The compiler sets P and DAB from the
// ports' latencies and segments so that b's row never arrives before a's, a's next row
// not before b's, and, when both read the same buffer (SHARE), their reads of its RAM
// never meet. Slot r comes only once in_avail > r: a producer writing an input buffer in
// the same step (started together, one at a time; P = 1, DAB = 0) says how many rows it
// has written so far; otherwise in_avail is R.
module snn_add #(
    parameter R   = 16,
    parameter D   = 8,
    parameter RW  = 4,
    parameter WA  = 8,
    parameter WB  = 8,
    parameter WO  = 9,
    parameter P   = 1,     // cycles between slots
    parameter PW  = 1,     // bits of the slot gap counter (holds P - 1)
    parameter DAB = 0      // cycles from a's request of a row to b's
) (
    input  wire            clk,
    input  wire            rst,
    input  wire            start,
    input  wire            a_valid,
    input  wire            b_valid,
    input  wire [RW:0]     in_avail,  // rows that may be read (rows 0..in_avail-1)
    output reg             done,
    output reg             a_req,
    output reg  [RW-1:0]   a_row,
    input  wire            a_ack,
    input  wire [D*WA-1:0] a_data,
    output reg             b_req,
    output reg  [RW-1:0]   b_row,
    input  wire            b_ack,
    input  wire [D*WB-1:0] b_data,
    output wire            out_we,
    output reg  [RW-1:0]   out_waddr,
    output wire [D*WO-1:0] out_wdata
);
    localparam integer LAST_I = R - 1;
    localparam [RW-1:0] LAST = LAST_I[RW-1:0];
    localparam integer GAP_I = P - 1;
    localparam [PW-1:0] GAP = GAP_I[PW-1:0];

    reg            busy;
    reg            slotting;   // slots still to come
    reg [RW-1:0]   q;          // slots so far
    reg [PW-1:0]   gap;        // cycles to the next slot
    reg            slot_q;     // a slot was in the last cycle
    reg [D*WO-1:0] a_row_q;    // a's row, extended, kept until b's arrives

    wire first_ok = in_avail != {(RW+1){1'b0}};   // row 0 may be read at the start
    wire slot = (start && !busy && first_ok)
                || (busy && slotting && gap == {PW{1'b0}} && {1'b0, q} < in_avail);
    wire b_slot;               // the slot DAB cycles ago
    wire row = b_valid ? b_ack : a_valid ? a_ack : slot_q;   // a row's sum is written

    generate
        if (DAB == 0) begin : g_same
            assign b_slot = slot;
        end else if (DAB == 1) begin : g_one
            reg later;

            always @(posedge clk) later <= slot;
            assign b_slot = later;
        end else begin : g_later
            reg [DAB-1:0] later;

            always @(posedge clk) later <= {later[DAB-2:0], slot};
            assign b_slot = later[DAB-1];
        end
    endgenerate

    // Lane datapaths as loops in a combinational block (see snn_neuron). WO > WA, WB.
    reg [D*WO-1:0] a_ext;
    reg [D*WO-1:0] a_now;
    reg [D*WO-1:0] sum;
    integer l;

    always @* begin
        for (l = 0; l < D; l = l + 1) begin
            a_ext[l*WO +: WO] = {{(WO-WA){a_data[l*WA+WA-1]}}, a_data[l*WA +: WA]};
            a_now[l*WO +: WO] = !a_valid ? {WO{1'b0}}
                : a_ack ? a_ext[l*WO +: WO] : a_row_q[l*WO +: WO];
            sum[l*WO +: WO] = a_now[l*WO +: WO]
                + (b_valid ? {{(WO-WB){b_data[l*WB+WB-1]}}, b_data[l*WB +: WB]} : {WO{1'b0}});
        end
    end

    assign out_we    = row && busy;
    assign out_wdata = sum;

    // the clocked block runs only while there is something to do (an idle engine costs
    // an event-driven simulator nothing)
    wire wake = rst | start | done | busy | slot_q;

    always @(posedge clk) if (wake) begin
        if (rst) begin
            busy <= 1'b0;
            done <= 1'b0;
            a_req <= 1'b0;
            b_req <= 1'b0;
            slot_q <= 1'b0;
        end else begin
            done <= 1'b0;
            a_req <= a_valid && slot;
            b_req <= b_valid && b_slot;
            slot_q <= slot;
            if (gap != {PW{1'b0}}) gap <= gap - 1'b1;
            if (slot) begin
                gap <= GAP;
                q <= q + 1'b1;
                if (q == LAST) slotting <= 1'b0;
            end
            if (a_req) a_row <= a_row + 1'b1;
            if (b_req) b_row <= b_row + 1'b1;
            if (a_valid && a_ack) a_row_q <= a_ext;
            if (row && busy) begin
                out_waddr <= out_waddr + 1'b1;
                if (out_waddr == LAST) begin
                    busy <= 1'b0;
                    done <= 1'b1;
                end
            end
            if (start && !busy) begin
                busy <= 1'b1;
                slotting <= R > 1 || !first_ok;
                q <= first_ok ? {RW{1'b0}} + 1'b1 : {RW{1'b0}};
                gap <= first_ok ? GAP : {PW{1'b0}};
                a_row <= {RW{1'b0}};
                b_row <= {RW{1'b0}};
                out_waddr <= {RW{1'b0}};
            end
        end
    end
endmodule
