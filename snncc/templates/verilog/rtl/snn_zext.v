// snn_zext: zero-extend a WI-bit unsigned value to WO >= WI bits.
module snn_zext #(
    parameter WI = 8,
    parameter WO = 16
) (
    input  wire [WI-1:0] x,
    output wire [WO-1:0] y
);
    generate
        if (WO > WI) begin : g_extend
            assign y = {{(WO - WI){1'b0}}, x};
        end else begin : g_same
            assign y = x;
        end
    endgenerate
endmodule
