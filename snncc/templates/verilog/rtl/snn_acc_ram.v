// snn_acc_ram: the accumulator RAM of a folded synapse engine (snn_dense, snn_conv): a
// simple dual-port RAM as snn_ram (one synchronous write port, one synchronous read port
// with a read enable, read-before-write) whose read returns zero when `clr` is high: a
// synchronous reset of the read register, which an FPGA flip-flop (or a block RAM's
// output register) has, so the engine's first event of a row needs no multiplexer per
// bit to start from zero. Block RAM is asked for by snn_ram's rule (the estimate's
// ram_block places every RAM by it). No reset, no initial contents.
module snn_acc_ram #(
    parameter WIDTH = 8,
    parameter DEPTH = 16,
    parameter AW    = 4
) (
    input  wire             clk,
    input  wire             we,
    input  wire [AW-1:0]    waddr,
    input  wire [WIDTH-1:0] wdata,
    input  wire             re,
    input  wire             clr,    // with re: read zero instead of the word
    input  wire [AW-1:0]    raddr,
    output reg  [WIDTH-1:0] rdata
);
`ifdef SYNTHESIS
    (* ram_style = (DEPTH >= 64 && WIDTH >= 72) || (DEPTH >= 32 && WIDTH >= 512)
                   ? "block" : "auto" *)
`endif
    reg [WIDTH-1:0] mem [0:DEPTH-1];

    wire active = we | re;  // (an idle RAM costs an event-driven simulator nothing)

    always @(posedge clk) begin
        if (active) begin
            if (we) mem[waddr] <= wdata;
            if (re) rdata <= clr ? {WIDTH{1'b0}} : mem[raddr];
        end
    end
endmodule
