// snn_ram: simple dual-port RAM, one synchronous write port and one synchronous read
// port with a read enable (read-before-write: a read of the address being written
// returns the old word; rdata holds while re is low). Yosys infers block RAM from it;
// no reset, no initial contents. Yosys's costs (a LUTRAM cell 8, a RAMB36 257) keep a
// RAM of up to about 86 words in LUTRAM however wide it is; a RAM of at least 64 words
// of at least 72 bits (24 RAM64M cells, 96 LUT sites, per RAMB36) or of at least 32
// words of at least 512 bits (86 or more RAM32M cells) asks for block RAM (ram_style
// "block"): the wide state and value RAMs of engines folded to 8-16 lanes.
module snn_ram #(
    parameter WIDTH = 8,
    parameter DEPTH = 16,
    parameter AW    = 4
) (
    input  wire             clk,
    input  wire             we,
    input  wire [AW-1:0]    waddr,
    input  wire [WIDTH-1:0] wdata,
    input  wire             re,
    input  wire [AW-1:0]    raddr,
    output reg  [WIDTH-1:0] rdata
);
    // the estimate's ram_block ("auto": Yosys's own choice; simulators take no
    // parameters in attributes)
`ifdef SYNTHESIS
    (* ram_style = (DEPTH >= 64 && WIDTH >= 72) || (DEPTH >= 32 && WIDTH >= 512)
                   ? "block" : "auto" *)
`endif
    reg [WIDTH-1:0] mem [0:DEPTH-1];

    wire active = we | re;  // (an idle RAM costs an event-driven simulator nothing)

    always @(posedge clk) begin
        if (active) begin
            if (we) mem[waddr] <= wdata;
            if (re) rdata <= mem[raddr];
        end
    end
endmodule
