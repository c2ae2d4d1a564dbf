// snn_add: the residual stream, out[i] = a[i] + b[i] (currents from two branches).
// A silent input (its valid flag low this step) reads as zero. N + 2 cycles.
module snn_add #(
    parameter N   = 16,
    parameter AW  = 4,     // index bits (N entries)
    parameter WA  = 8,
    parameter WB  = 8,
    parameter WO  = 9
) (
    input  wire          clk,
    input  wire          rst,
    input  wire          start,
    input  wire          a_valid,
    input  wire          b_valid,
    output reg           busy,
    output reg           done,
    output wire [AW-1:0] a_addr,
    input  wire [WA-1:0] a_data,
    output wire [AW-1:0] b_addr,
    input  wire [WB-1:0] b_data,
    output wire          out_we,
    output wire [AW-1:0] out_waddr,
    output wire [WO-1:0] out_wdata
);
    localparam integer LAST_I = N - 1;
    localparam [AW-1:0] LAST = LAST_I[AW-1:0];

    reg          issuing;
    reg [AW-1:0] i0;
    reg          s1;
    reg [AW-1:0] i1;

    wire [WO-1:0] a_ext;
    wire [WO-1:0] b_ext;

    snn_sext #(.WI(WA), .WO(WO)) u_a (.x(a_data), .y(a_ext));
    snn_sext #(.WI(WB), .WO(WO)) u_b (.x(b_data), .y(b_ext));

    assign a_addr   = i0;
    assign b_addr   = i0;
    assign out_we   = s1;
    assign out_waddr = i1;
    assign out_wdata = (a_valid ? a_ext : {WO{1'b0}}) + (b_valid ? b_ext : {WO{1'b0}});

    always @(posedge clk) begin
        if (rst) begin
            busy <= 1'b0;
            done <= 1'b0;
            issuing <= 1'b0;
            s1 <= 1'b0;
        end else begin
            done <= 1'b0;
            if (start) begin
                busy <= 1'b1;
                issuing <= 1'b1;
                i0 <= {AW{1'b0}};
            end
            s1 <= issuing;
            i1 <= i0;
            if (issuing) begin
                i0 <= i0 + 1'b1;
                if (i0 == LAST) issuing <= 1'b0;
            end
            if (s1 && i1 == LAST) begin
                busy <= 1'b0;
                done <= 1'b1;
            end
        end
    end
endmodule
