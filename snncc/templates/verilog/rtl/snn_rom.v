// snn_rom: read-only memory with a synchronous read port and read enable, loaded by
// $readmemh (weights, threshold tables, biases). Yosys maps it to block RAM by its cost
// model; BLOCK = 1 asks for block RAM whatever the size (the `rom_style` attribute): the
// deep, narrow weight ROMs of folded synapse engines, which Yosys's model leaves in logic
// below half a RAMB18 although a block RAM read costs fewer LUTs.
module snn_rom #(
    parameter WIDTH = 8,
    parameter DEPTH = 16,
    parameter AW    = 4,
    parameter FILE  = "rom.hex",
    parameter BLOCK = 0
) (
    input  wire             clk,
    input  wire             re,
    input  wire [AW-1:0]    raddr,
    output reg  [WIDTH-1:0] rdata
);
    generate
        if (BLOCK != 0) begin : g_block
            (* rom_style = "block" *) reg [WIDTH-1:0] mem [0:DEPTH-1];

            initial $readmemh(FILE, mem);

            always @(posedge clk) if (re) rdata <= mem[raddr];
        end else begin : g_auto
            reg [WIDTH-1:0] mem [0:DEPTH-1];

            initial $readmemh(FILE, mem);

            always @(posedge clk) if (re) rdata <= mem[raddr];
        end
    endgenerate
endmodule
