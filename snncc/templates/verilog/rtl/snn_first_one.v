// snn_first_one: the index of the lowest set bit of x (a priority encoder): the next
// spike event of a row (0 when x is all zero).
module snn_first_one #(
    parameter N  = 8,
    parameter IW = 3    // index bits (holds N - 1)
) (
    input  wire [N-1:0]  x,
    output reg  [IW-1:0] index
);
    integer l;

    always @* begin
        index = {IW{1'b0}};
        for (l = N - 1; l >= 0; l = l - 1)
            if (x[l]) index = l[IW-1:0];
    end
endmodule
