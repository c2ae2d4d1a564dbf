// snn_rom: read-only memory with a synchronous read port and read enable, loaded by
// $readmemh (weights, threshold tables, biases). Yosys maps it to block RAM by itself
// when it is deeper than 256 words; a ROM of at least 64 words and half a RAMB18 of bits
// asks for block RAM (rom_style "block"), which Yosys would otherwise build in LUTs: the
// wide, shallow weight ROMs of engines folded to 8-32 lanes (64-256 words of up to 448
// bits) then cost no LUTs.
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
    // the estimate's ROM_BLOCK_DEPTH and XC7_ROM_MIN_BITS ("auto": Yosys's own choice;
    // simulators take no parameters in attributes)
`ifdef SYNTHESIS
    (* rom_style = DEPTH >= 64 && DEPTH * WIDTH >= 9216 ? "block" : "auto" *)
`endif
    reg [WIDTH-1:0] mem [0:DEPTH-1];

    initial $readmemh(FILE, mem);

    always @(posedge clk) if (re) rdata <= mem[raddr];
endmodule
