// snn_rom: read-only memory with a synchronous read port and read enable, loaded by
// $readmemh (weights, threshold tables, biases). Yosys maps it to block RAM by its cost
// model when it is deeper than 256 words. Two kinds of ROM ask for block RAM (rom_style
// "block"), which Yosys would otherwise build in logic although a block RAM read costs
// fewer LUTs: BLOCK = 1, the deep, narrow weight ROMs of folded synapse engines (below
// half a RAMB18), and a ROM of at least 64 words and half a RAMB18 of bits, the wide,
// shallow weight ROMs of engines folded to 8-32 lanes (64-256 words of up to 448 bits).
module snn_rom #(
    parameter WIDTH = 8,
    parameter DEPTH = 16,
    parameter AW    = 4,
    parameter FILE  = "rom.hex",
    // read by synthesis alone (the rom_style attribute below)
    /* verilator lint_off UNUSEDPARAM */
    parameter BLOCK = 0
    /* verilator lint_on UNUSEDPARAM */
) (
    input  wire             clk,
    input  wire             re,
    input  wire [AW-1:0]    raddr,
    output reg  [WIDTH-1:0] rdata
);
    // the estimate's romblock, ROM_BLOCK_DEPTH and XC7_ROM_MIN_BITS ("auto": Yosys's own
    // choice; simulators take no parameters in attributes)
`ifdef SYNTHESIS
    (* rom_style = BLOCK != 0 || (DEPTH >= 64 && DEPTH * WIDTH >= 9216) ? "block" : "auto" *)
`endif
    reg [WIDTH-1:0] mem [0:DEPTH-1];

    initial $readmemh(FILE, mem);

    always @(posedge clk) if (re) rdata <= mem[raddr];
endmodule
