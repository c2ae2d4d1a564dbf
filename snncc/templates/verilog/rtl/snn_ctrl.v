// snn_ctrl: the time-step controller. For t in 0..STEPS-1, for every engine in
// topological order: if the schedule says the engine has work at step t, pulse its
// start and wait for its done. The schedule (computed by the compiler from every
// layer's activity window) also says which values are active (may be non-zero) at
// step t; a consumer reads an inactive value as zero.
//
// The engines of a step still to run are a mask; the next one is its lowest set bit
// (the topological order), started in the cycle its predecessor's done arrives. An
// engine without work at a step costs nothing, a step three cycles.
module snn_ctrl #(
    parameter NE    = 4,     // engines
    parameter NA    = 4,     // tracked values
    parameter STEPS = 16,
    parameter TW    = 4,     // step bits (STEPS entries)
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

    reg [NA+NE-1:0] schedule [0:STEPS-1];
    initial $readmemh(SCHEDULE_FILE, schedule);

    reg              load;     // the step's run mask is read this cycle
    reg              waiting;  // the engine `current` runs
    reg [NE-1:0]     pending;  // engines of the step still to run
    reg [NE-1:0]     current;  // one-hot
    wire [NA+NE-1:0] row = schedule[step];
    wire [NE-1:0]    run = row[NE-1:0];
    wire [NE-1:0]    rest = pending & ~current;        // after the current engine
    wire [NE-1:0]    next_now = pending & (~pending + 1'b1);  // lowest set bit
    wire [NE-1:0]    next_rest = rest & (~rest + 1'b1);

    assign active = row[NA+NE-1:NE];

    always @(posedge clk) begin
        if (rst) begin
            running <= 1'b0;
            finish <= 1'b0;
            start <= {NE{1'b0}};
            waiting <= 1'b0;
            load <= 1'b0;
            step <= {TW{1'b0}};
            cycles <= 32'd0;
        end else begin
            finish <= 1'b0;
            start <= {NE{1'b0}};
            if (!running) begin
                if (go) begin
                    running <= 1'b1;
                    step <= {TW{1'b0}};
                    load <= 1'b1;
                    waiting <= 1'b0;
                    cycles <= 32'd0;
                end
            end else begin
                cycles <= cycles + 32'd1;
                if (load) begin
                    load <= 1'b0;
                    pending <= run;
                end else if (waiting) begin
                    if (|(done & current)) begin
                        pending <= rest;
                        current <= next_rest;
                        start <= next_rest;
                        waiting <= rest != {NE{1'b0}};
                    end
                end else if (pending != {NE{1'b0}}) begin
                    current <= next_now;
                    start <= next_now;
                    waiting <= 1'b1;
                end else if (step == LAST_STEP) begin
                    running <= 1'b0;
                    finish <= 1'b1;
                end else begin
                    step <= step + 1'b1;
                    load <= 1'b1;
                end
            end
        end
    end
endmodule
