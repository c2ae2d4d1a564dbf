// snn_lut: read-only table with a combinational read, loaded by $readmemh. Used for
// small tables: convolution and pooling taps, layout maps, threshold words shared by
// every row.
module snn_lut #(
    parameter WIDTH = 8,
    parameter DEPTH = 16,
    parameter AW    = 4,
    parameter FILE  = "lut.hex"
) (
    input  wire [AW-1:0]    addr,
    output wire [WIDTH-1:0] data
);
    reg [WIDTH-1:0] mem [0:DEPTH-1];

    initial $readmemh(FILE, mem);

    assign data = mem[addr];
endmodule
