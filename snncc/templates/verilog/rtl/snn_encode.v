// snn_encode: the spike train of an input code. A code c is c spikes at steps 0..c-1,
// so the input spikes at step t exactly when c > t.
module snn_encode #(
    parameter CW = 3,   // code width (unsigned)
    parameter TW = 6,   // step width
    parameter W  = 6    // max(CW, TW)
) (
    input  wire [CW-1:0] code,
    input  wire [TW-1:0] step,
    output wire          spike
);
    wire [W-1:0] c;
    wire [W-1:0] s;

    snn_zext #(.WI(CW), .WO(W)) u_code (.x(code), .y(c));
    snn_zext #(.WI(TW), .WO(W)) u_step (.x(step), .y(s));

    assign spike = c > s;
endmodule
