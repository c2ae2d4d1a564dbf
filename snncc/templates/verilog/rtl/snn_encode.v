// snn_encode: the spike trains of a row of D input codes. A code c is c spikes at steps
// 0..c-1, so lane l spikes at step t exactly when code[l] > t.
module snn_encode #(
    parameter D  = 8,
    parameter CW = 3,   // code width (unsigned)
    parameter TW = 6,   // step width
    parameter W  = 7    // max(CW, TW) + 1
) (
    input  wire [D*CW-1:0] codes,
    input  wire [TW-1:0]   step,
    output reg  [D-1:0]    spikes
);
    integer l;

    // lane l: code > step, both zero-extended to W > CW, TW bits
    always @* begin
        for (l = 0; l < D; l = l + 1)
            spikes[l] = {{(W-CW){1'b0}}, codes[l*CW +: CW]} > {{(W-TW){1'b0}}, step};
    end
endmodule
