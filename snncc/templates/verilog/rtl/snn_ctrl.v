// snn_ctrl: the time-step controller. For t in 0..STEPS-1, for every engine in
// topological order: if the schedule says the engine has work at step t, pulse its
// start and wait for its done. The schedule (computed by the compiler from every
// layer's activity window) also says which values are active (may be non-zero) at
// step t; a consumer reads an inactive value as zero.
module snn_ctrl #(
    parameter NE    = 4,     // engines
    parameter NA    = 4,     // tracked values
    parameter STEPS = 16,
    parameter TW    = 4,     // step bits (STEPS entries)
    parameter EW    = 3,     // engine index bits (holds NE)
    parameter SCHEDULE_FILE = "schedule.hex"  // per step: {active[NA], run[NE]}
) (
    input  wire          clk,
    input  wire          rst,
    input  wire          go,
    output reg           running,
    output reg           finish,
    output reg  [TW-1:0] step,
    output reg  [NE-1:0] start,
    output wire [NA-1:0] active,
    input  wire [NE-1:0] done,
    output reg  [31:0]   cycles
);
    localparam integer LAST_STEP_I = STEPS - 1;
    localparam [TW-1:0] LAST_STEP = LAST_STEP_I[TW-1:0];
    localparam integer END_LAYER_I = NE;
    localparam [EW-1:0] END_LAYER = END_LAYER_I[EW-1:0];

    reg [NA+NE-1:0] schedule [0:STEPS-1];
    initial $readmemh(SCHEDULE_FILE, schedule);

    reg [EW-1:0] layer;
    reg          waiting;
    wire [NA+NE-1:0] row = schedule[step];
    wire [NE-1:0]    run = row[NE-1:0];
    wire [NE-1:0]    sel;

    genvar k;
    generate
        for (k = 0; k < NE; k = k + 1) begin : g_sel
            localparam integer INDEX_I = k;
            localparam [EW-1:0] INDEX = INDEX_I[EW-1:0];
            assign sel[k] = layer == INDEX;
        end
    endgenerate

    assign active = row[NA+NE-1:NE];

    always @(posedge clk) begin
        if (rst) begin
            running <= 1'b0;
            finish <= 1'b0;
            start <= {NE{1'b0}};
            waiting <= 1'b0;
            step <= {TW{1'b0}};
            cycles <= 32'd0;
        end else begin
            finish <= 1'b0;
            start <= {NE{1'b0}};
            if (!running) begin
                if (go) begin
                    running <= 1'b1;
                    step <= {TW{1'b0}};
                    layer <= {EW{1'b0}};
                    waiting <= 1'b0;
                    cycles <= 32'd0;
                end
            end else begin
                cycles <= cycles + 32'd1;
                if (waiting) begin
                    if (|(done & sel)) begin
                        waiting <= 1'b0;
                        layer <= layer + 1'b1;
                    end
                end else if (layer == END_LAYER) begin
                    layer <= {EW{1'b0}};
                    if (step == LAST_STEP) begin
                        running <= 1'b0;
                        finish <= 1'b1;
                    end else begin
                        step <= step + 1'b1;
                    end
                end else if (|(run & sel)) begin
                    start <= sel;
                    waiting <= 1'b1;
                end else begin
                    layer <= layer + 1'b1;
                end
            end
        end
    end
endmodule
