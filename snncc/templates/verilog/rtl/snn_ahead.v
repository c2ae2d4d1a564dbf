// snn_ahead: which cycle an engine reads its state for the row a port is fetching. A port
// of latency LAT answers a request LAT cycles later; the engine reads the row's state
// the cycle before, that is the request seen LAT - 1 cycles ago (this cycle's if LAT is
// 1). A silent input (`valid` low) fetches nothing: the engine reads as `silent` says.
module snn_ahead #(
    parameter LAT = 1
) (
    input  wire clk,
    input  wire valid,    // the port reads an active value
    input  wire req,      // the request the port takes this cycle
    input  wire silent,   // what to read while the input is silent
    output wire rd
);
    generate
        if (LAT == 1) begin : g_lat1
            wire unused_clk = &{1'b0, clk};
            assign rd = valid ? req : silent;
        end else begin : g_lat
            reg [LAT-2:0] seen;   // the requests the port has seen, by age
            if (LAT == 2) begin : g_one
                always @(posedge clk) seen <= req;
            end else begin : g_more
                always @(posedge clk) seen <= {seen[LAT-3:0], req};
            end
            assign rd = valid ? seen[LAT-2] : silent;
        end
    endgenerate
endmodule
