// snn_rom: read-only memory with a synchronous read port and read enable, loaded by
// $readmemh (weights, threshold tables, biases). Yosys maps it to block RAM.
module snn_rom #(
    parameter WIDTH = 8,
    parameter DEPTH = 16,
    parameter AW    = 4,
    parameter FILE  = "rom.hex"
) (
    input  wire             clk,
    input  wire             re,
    input  wire [AW-1:0]    raddr,
    output reg  [WIDTH-1:0] rdata
);
    reg [WIDTH-1:0] mem [0:DEPTH-1];

    initial $readmemh(FILE, mem);

    always @(posedge clk) if (re) rdata <= mem[raddr];
endmodule
