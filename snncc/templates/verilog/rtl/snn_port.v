// snn_port: one engine input, reading rows of its view of a value held in a buffer RAM.
//
// A view row of VD lanes is assembled from G segments of S lanes; segment g is S
// consecutive lanes of one buffer row, at the buffer row and lane offset the map table
// gives for (view row, g). The compiler computes the table from the layout ops between
// the value and the engine (reshape, transpose, gather, broadcast), choosing the widest
// segments it can: a transpose of the lane axis needs single-lane segments (G = VD), a
// head split (reshape + transpose) needs one segment at a lane offset, the kernel row of
// a convolution's window over an image row (the analog first layer) one at an offset
// that may lie before lane 0 (OB). MAP = 0 is the
// identity view: view row r is buffer row r. MAP = 2 reads a buffer written in chunks of a
// row (a folded engine's output, S = SD lanes a word): view row r is buffer words
// {r, 0} .. {r, G-1} (G a power of two), no table.
// Protocol: `req` with `row` for one cycle; `ack` with `data` G + 1 cycles later (one
// cycle for the identity); `data` is valid in the `ack` cycle only: the engines take it
// then (or gate it with the value's activity), so the identity port passes the buffer's
// read word as it is (no gate per bit: on an FPGA a LUT per bit of every buffer read).
module snn_port #(
    parameter MAP      = 0,
    parameter VD       = 8,    // view lanes
    parameter W        = 1,    // bits per lane
    parameter G        = 1,    // segments per view row
    parameter S        = 8,    // lanes per segment (G * S = VD)
    parameter SD       = 8,    // buffer lanes
    parameter VRW      = 3,    // view row bits
    parameter BAW      = 3,    // buffer row bits
    parameter GB       = 1,    // segment index bits (holds G - 1)
    parameter OW       = 3,    // lane offset bits (holds SD - 1 + OB)
    parameter OB       = 0,    // the table's offsets are biased by OB (a segment may begin
                               // up to OB lanes before lane 0; those lanes read as zero)
    parameter MAP_FILE = "map.hex"  // {buffer row, lane offset} at {view row, segment}
) (
    input  wire            clk,
    input  wire            rst,
    input  wire            req,
    input  wire [VRW-1:0]  row,
    output wire            ack,
    output wire [VD*W-1:0] data,
    output wire            rd_en,
    output wire [BAW-1:0]  rd_addr,
    input  wire [SD*W-1:0] rd_data
);
    generate
        if (MAP == 0) begin : g_identity
            reg ack_q;

            wire wake = req | ack_q | rst;

            always @(posedge clk) if (wake) ack_q <= !rst && req;

            assign ack = ack_q;
            assign data = rd_data;
            assign rd_en = req;
            assign rd_addr = row;
        end else if (MAP == 2) begin : g_words
            // G whole words in order, one read per cycle, shifted in from the top (the
            // same timing as a table's segments: ack G + 2 cycles after req)
            localparam integer G_LAST_I = G - 1;
            localparam [GB-1:0] G_LAST = G_LAST_I[GB-1:0];

            reg             fetching;
            reg [VRW-1:0]   r;
            reg [GB-1:0]    g;
            reg             got;       // a word arrives this cycle
            reg             got_last;
            reg             ack_q;
            reg [VD*W-1:0]  row_q;

            wire wake = rst | req | fetching | got | ack_q;

            always @(posedge clk) if (wake) begin
                if (rst) begin
                    fetching <= 1'b0;
                    got <= 1'b0;
                    ack_q <= 1'b0;
                end else begin
                    got <= fetching;
                    got_last <= fetching && g == G_LAST;
                    ack_q <= got && got_last;
                    if (req) begin
                        fetching <= 1'b1;
                        r <= row;
                        g <= {GB{1'b0}};
                    end else if (fetching) begin
                        if (g == G_LAST) fetching <= 1'b0;
                        g <= g + 1'b1;
                    end
                end
            end
            always @(posedge clk) if (got) row_q <= {rd_data, row_q[VD*W-1:SD*W]};

            if (BAW > GB) begin : g_rows
                assign rd_addr = {r, g};
            end else begin : g_row  // one view row: the word is g
                wire unused_r = &{1'b0, r};

                assign rd_addr = g;
            end
            assign ack = ack_q;
            assign data = row_q;
            assign rd_en = fetching;
        end else begin : g_map
            localparam integer G_LAST_I = G - 1;
            localparam [GB-1:0] G_LAST = G_LAST_I[GB-1:0];

            reg             fetching;
            reg [VRW-1:0]   r;
            reg [GB-1:0]    g;
            reg             got;       // a segment's row arrives this cycle
            reg             got_last;
            reg [OW-1:0]    offset;
            reg             ack_q;
            reg [VD*W-1:0]  row_q;
            reg [S*W-1:0]   segment;
            wire [BAW+OW-1:0] entry;
            integer j;
            integer l;

            snn_lut #(.WIDTH(BAW + OW), .DEPTH(1 << (VRW + GB)), .AW(VRW + GB),
                      .FILE(MAP_FILE)) u_map (.addr({r, g}), .data(entry));

            // lanes offset - OB .. offset - OB + S - 1 of the buffer row (zero outside it)
            always @* begin
                segment = {S*W{1'b0}};
                for (j = 0; j < S; j = j + 1)
                    for (l = (j > OB ? j - OB : 0); l < SD; l = l + 1)
                        if (offset == l[OW-1:0] + OB[OW-1:0] - j[OW-1:0])
                            segment[j*W +: W] = rd_data[l*W +: W];
            end

            wire wake = rst | req | fetching | got | ack_q;

            always @(posedge clk) if (wake) begin
                if (rst) begin
                    fetching <= 1'b0;
                    got <= 1'b0;
                    ack_q <= 1'b0;
                end else begin
                    got <= fetching;
                    got_last <= fetching && g == G_LAST;
                    offset <= entry[OW-1:0];
                    ack_q <= got && got_last;
                    if (req) begin
                        fetching <= 1'b1;
                        r <= row;
                        g <= {GB{1'b0}};
                    end else if (fetching) begin
                        if (g == G_LAST) fetching <= 1'b0;
                        g <= g + 1'b1;
                    end
                end
            end

            // segments arrive in order and shift in from the top
            if (G == 1) begin : g_one
                always @(posedge clk) if (got) row_q <= segment;
            end else begin : g_many
                always @(posedge clk) if (got) row_q <= {segment, row_q[VD*W-1:S*W]};
            end

            assign ack = ack_q;
            assign data = row_q;
            assign rd_en = fetching;
            assign rd_addr = entry[BAW+OW-1:OW];
        end
    endgenerate
endmodule
