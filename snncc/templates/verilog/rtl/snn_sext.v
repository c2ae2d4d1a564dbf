// snn_sext: sign-extend a WI-bit two's-complement value to WO >= WI bits.
module snn_sext #(
    parameter WI = 8,
    parameter WO = 16
) (
    input  wire [WI-1:0] x,
    output wire [WO-1:0] y
);
    generate
        if (WO > WI) begin : g_extend
            assign y = {{(WO - WI){x[WI-1]}}, x};
        end else begin : g_same
            assign y = x;
        end
    endgenerate
endmodule
