// snn_lane_mux: lane `index` of a row of N lanes of W bits.
module snn_lane_mux #(
    parameter N  = 8,
    parameter W  = 4,
    parameter IW = 3    // index bits (holds N - 1)
) (
    input  wire [N*W-1:0] row,
    input  wire [IW-1:0]  index,
    output reg  [W-1:0]   lane
);
    integer l;

    always @* begin
        lane = {W{1'b0}};
        for (l = 0; l < N; l = l + 1)
            if (index == l[IW-1:0]) lane = row[l*W +: W];
    end
endmodule
