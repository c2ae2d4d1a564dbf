// snn_ram: simple dual-port RAM, one synchronous write port and one synchronous read
// port with a read enable (read-before-write: a read of the address being written
// returns the old word; rdata holds while re is low). Yosys infers block RAM from it;
// no reset, no initial contents.
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
    reg [WIDTH-1:0] mem [0:DEPTH-1];

    wire active = we | re;  // (an idle RAM costs an event-driven simulator nothing)

    always @(posedge clk) begin
        if (active) begin
            if (we) mem[waddr] <= wdata;
            if (re) rdata <= mem[raddr];
        end
    end
endmodule
