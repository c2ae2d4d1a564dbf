// snn_mac: the product of an input code and a weight. The analog first layer (input
// codes with more levels than the spike window) is the one place that multiplies;
// every other layer only adds. WP must hold both operands and the product.
module snn_mac #(
    parameter WA       = 8,   // code width
    parameter A_SIGNED = 0,   // codes are two's complement
    parameter WB       = 8,   // weight width (two's complement)
    parameter WP       = 16   // product width
) (
    input  wire [WA-1:0] a,
    input  wire [WB-1:0] b,
    output wire [WP-1:0] p
);
    wire [WA:0]   a_s = A_SIGNED ? {a[WA-1], a} : {1'b0, a};
    wire [WP-1:0] a_w;
    wire [WP-1:0] b_w;

    snn_sext #(.WI(WA + 1), .WO(WP)) u_a (.x(a_s), .y(a_w));
    snn_sext #(.WI(WB), .WO(WP)) u_b (.x(b), .y(b_w));

    assign p = a_w * b_w;
endmodule
