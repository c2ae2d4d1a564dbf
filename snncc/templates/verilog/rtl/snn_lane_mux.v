// snn_lane_mux: lane `index` of a row of N lanes of W bits (zero past the last lane).
// A tree of 2:1 multiplexers, one level per index bit (the lowest bit at the leaves),
// which maps to LUT6 4:1 multiplexers and the FPGA's wide-multiplexer cells; written as
// loops in a combinational block (the level's nodes overwrite the level below in place).
module snn_lane_mux #(
    parameter N  = 8,
    parameter W  = 4,
    parameter IW = 3    // index bits (holds N - 1)
) (
    input  wire [N*W-1:0] row,
    input  wire [IW-1:0]  index,
    output reg  [W-1:0]   lane
);
    localparam integer NL = 1 << IW;   // leaves: the lanes, padded with zeros
    reg [NL*W-1:0] level;
    integer s;
    integer i;

    always @* begin
        level = {NL*W{1'b0}};
        level[N*W-1:0] = row;
        for (s = 0; s < IW; s = s + 1)
            for (i = 0; i < (NL >> (s + 1)); i = i + 1)
                level[i*W +: W] = index[s] ? level[(2*i+1)*W +: W] : level[2*i*W +: W];
        lane = level[W-1:0];
    end
endmodule
