// snn_reduce: out[j, :] = sum over q < Q of in[q*NOUT + j, :], all D lanes at once: a
// ReduceSum (a mean before its 1/n is folded into the next threshold) of spikes or
// currents. The compiler orders the view so that the reduced axes come first and the
// lanes are kept. The rows are read in the order of the sums (j, then q), a request
// every IG cycles (the port's segments; an identity port: a row a cycle), ahead of their
// rows' arrival; each row is added in the cycle it arrives, output row j written with
// its last. Input row r is requested only once in_avail > r: a producer writing the
// input buffer in the same step (the rows it has written, the engine streaming them);
// otherwise in_avail is above every row.
module snn_reduce #(
    parameter NOUT      = 1,    // output rows
    parameter Q         = 8,    // input rows summed into each output row
    parameter D         = 10,   // lanes
    parameter IRW       = 3,    // input row bits (holds Q*NOUT - 1)
    parameter ORW       = 1,    // output row bits
    parameter QW        = 3,    // q bits (holds Q - 1)
    parameter WI        = 8,
    parameter IN_SIGNED = 1,    // currents are signed, spikes are not
    parameter WO        = 12,
    parameter IG        = 1,    // cycles between input row requests
    parameter GW        = 1     // bits of the request gap counter (holds IG - 1)
) (
    input  wire            clk,
    input  wire            rst,
    input  wire            start,
    output reg             done,
    output reg             in_req,
    output wire [IRW-1:0]  in_row,
    input  wire            in_ack,
    input  wire [D*WI-1:0] in_data,
    input  wire [IRW:0]    in_avail,  // input rows that may be read (0..in_avail-1)
    output wire            out_we,
    output wire [ORW-1:0]  out_waddr,
    output wire [D*WO-1:0] out_wdata
);
    localparam integer OUT_LAST_I = NOUT - 1;
    localparam [ORW-1:0] OUT_LAST = OUT_LAST_I[ORW-1:0];
    localparam integer Q_LAST_I = Q - 1;
    localparam [QW-1:0] Q_LAST = Q_LAST_I[QW-1:0];
    localparam integer STRIDE_I = NOUT;
    localparam [IRW-1:0] STRIDE = STRIDE_I[IRW-1:0];
    localparam integer ONE_I = 1;
    localparam [IRW-1:0] ONE = ONE_I[IRW-1:0];
    localparam integer IG_GAP_I = IG - 1;
    localparam [GW-1:0] IG_GAP = IG_GAP_I[GW-1:0];

    reg            busy;       // between start and done
    reg [D*WO-1:0] acc;
    reg [ORW-1:0]  j;          // the row arriving next: output row j's q-th
    reg [QW-1:0]   q;

    // the requests: the next one is for row ar = aq*NOUT + aj (an: aj + 1 as an input
    // row) while `asking`, gap cycles from now at the earliest; `row` was asked for last
    reg [IRW-1:0]  row;
    reg [IRW-1:0]  ar;
    reg [QW-1:0]   aq;
    reg [ORW-1:0]  aj;
    reg [IRW-1:0]  an;
    reg            asking;
    reg [GW-1:0]   gap;
    // the request this cycle's (at the start: row 0's) and the one after it
    wire [IRW-1:0] cr = start ? {IRW{1'b0}} : ar;
    wire [QW-1:0]  cq = start ? {QW{1'b0}} : aq;
    wire [ORW-1:0] cj = start ? {ORW{1'b0}} : aj;
    wire [IRW-1:0] cn = start ? ONE : an;
    wire           turn = cq == Q_LAST;  // the next request begins the next output row
    wire           ask = start ? in_avail != {(IRW+1){1'b0}}
                               : busy && asking && gap == {GW{1'b0}} && {1'b0, ar} < in_avail;

    // Lane datapaths as loops in a combinational block (see snn_neuron). WO > WI.
    reg [D*WO-1:0] sum;
    integer l;

    always @* begin
        for (l = 0; l < D; l = l + 1)
            sum[l*WO +: WO] = acc[l*WO +: WO] + {{(WO-WI){IN_SIGNED != 0 && in_data[l*WI+WI-1]}},
                                                 in_data[l*WI +: WI]};
    end

    assign in_row    = row;
    assign out_we    = in_ack && q == Q_LAST;
    assign out_waddr = j;
    assign out_wdata = sum;

    // the FSM's clocked block runs only while there is something to do (an idle engine
    // costs an event-driven simulator nothing)
    wire wake = rst | start | done | (busy);

    always @(posedge clk) if (wake) begin
        if (rst) begin
            done <= 1'b0;
            busy <= 1'b0;
            in_req <= 1'b0;
            asking <= 1'b0;
        end else begin
            done <= 1'b0;
            in_req <= ask;
            if (start) begin
                busy <= 1'b1;
                asking <= 1'b1;
                gap <= {GW{1'b0}};
                ar <= {IRW{1'b0}};
                aq <= {QW{1'b0}};
                aj <= {ORW{1'b0}};
                an <= ONE;
                j <= {ORW{1'b0}};
                q <= {QW{1'b0}};
                acc <= {D*WO{1'b0}};
            end else begin
                if (gap != {GW{1'b0}}) gap <= gap - 1'b1;
                if (in_ack) begin
                    if (q == Q_LAST) begin
                        // output row j is written in this cycle
                        acc <= {D*WO{1'b0}};
                        q <= {QW{1'b0}};
                        if (j == OUT_LAST) begin
                            busy <= 1'b0;
                            done <= 1'b1;
                        end else begin
                            j <= j + 1'b1;
                        end
                    end else begin
                        acc <= sum;
                        q <= q + 1'b1;
                    end
                end
            end
            if (ask) begin  // the next request
                row <= cr;
                gap <= IG_GAP;
                ar <= turn ? cn : cr + STRIDE;
                aq <= turn ? {QW{1'b0}} : cq + 1'b1;
                aj <= turn ? cj + 1'b1 : cj;
                an <= turn ? cn + 1'b1 : cn;
                asking <= !(turn && cj == OUT_LAST);
            end
        end
    end
endmodule
