// snn_lane_mux: lane `index` of a row of N lanes of W bits (zero past the last lane).
// A tree of 2:1 multiplexers, one level per index bit (lowest bit at the leaves), which
// maps to LUT6 4:1 multiplexers and the FPGA's wide-multiplexer cells.
module snn_lane_mux #(
    parameter N  = 8,
    parameter W  = 4,
    parameter IW = 3    // index bits (holds N - 1)
) (
    input  wire [N*W-1:0] row,
    input  wire [IW-1:0]  index,
    output wire [W-1:0]   lane
);
    localparam integer NL = 1 << IW;   // leaves: the lanes, padded with zeros
    wire [NL*W-1:0] leaves;

    genvar s, i;
    generate
        if (NL > N) begin : g_pad
            assign leaves = {{((NL-N)*W){1'b0}}, row};
        end else begin : g_full
            assign leaves = row;
        end
        // level s has NL >> s nodes: node i selects between nodes 2i and 2i+1 below it
        for (s = 1; s <= IW; s = s + 1) begin : g_level
            wire [(NL >> s)*W-1:0] node;

            for (i = 0; i < (NL >> s); i = i + 1) begin : g_node
                if (s == 1) begin : g_leaf
                    assign node[i*W +: W] = index[0] ? leaves[(2*i+1)*W +: W]
                                                     : leaves[2*i*W +: W];
                end else begin : g_inner
                    assign node[i*W +: W] = index[s-1] ? g_level[s-1].node[(2*i+1)*W +: W]
                                                       : g_level[s-1].node[2*i*W +: W];
                end
            end
        end
    endgenerate
    assign lane = g_level[IW].node;
endmodule
