// snn_ctrl: the time-step controller. For t in 0..STEPS-1, for every engine in
// topological order: if the schedule says the engine has work at step t, pulse its
// start and wait for its done. The schedule (computed by the compiler from every
// layer's activity window) also says which values are active (may be non-zero) at
// step t; a consumer reads an inactive value as zero.
//
// The engines of a step still to start are a mask (pending), those started and not done
// another (busy). Engine k starts once the engines of WAIT's mask k are neither pending
// nor busy and those of SWAIT's mask k are no longer pending (they start in the same
// cycle or have started). The compiler's masks (`Design.waits`): an engine waits for its
// producers (it starts with the one whose rows it streams) and for the engines before
// it that read a RAM it reads (one read port; readers that would otherwise wait have a
// twin RAM of the buffer each), and runs beside every other one. An engine is started
// in the cycle the last done it waits for arrives. The step's last cycle is the one
// after which nothing is left (`fresh`: the last done arrives, or the last engine is
// skipped): the next step's row is read in it, and the next step's first cycle starts
// its first engines (they begin in the cycle after). An engine without work at a step
// costs nothing, a step one cycle.
//
// Silent runs are skipped: an engine of SKIP's mask whose inputs are all silent when it
// would start (`quiet`, from the top: each input inactive, or written with nothing but
// zeros in this step) is not started: it leaves the pending mask as if started and is
// done at once (the engines waiting for it start in the next cycle; those starting with
// it, in the same one), and `skipped` says so for the rest of the step (its value reads
// as silent).
module snn_ctrl #(
    parameter NE    = 4,     // engines
    parameter NA    = 4,     // tracked values
    parameter STEPS = 16,
    parameter TW    = 4,     // step bits (STEPS entries)
    parameter [NE*NE-1:0] WAIT  = {NE*NE{1'b0}},  // bits k*NE +: NE: engines k waits for
    parameter [NE*NE-1:0] SWAIT = {NE*NE{1'b0}},  // ... and those it starts with, at the earliest
    parameter [NE-1:0] SKIP = {NE{1'b0}},  // engines not started when `quiet`
    parameter SCHEDULE_FILE = "schedule.hex"  // per step: {active[NA], run[NE]}
) (
    input  wire          clk,
    input  wire          rst,
    input  wire          go,
    output reg           running,
    output reg           finish,
    output reg  [TW-1:0] step,
    output reg  [NE-1:0] start,
    output reg  [NA-1:0] active,
    input  wire [NE-1:0] done,
    input  wire [NE-1:0] quiet,    // the engine's inputs are all silent
    output reg  [NE-1:0] skipped,  // skipped in this step
    output wire          fresh,    // a step begins after this cycle (what marks the step clears)
    output reg  [31:0]   cycles
);
    localparam integer LAST_STEP_I = STEPS - 1;
    localparam [TW-1:0] LAST_STEP = LAST_STEP_I[TW-1:0];

    reg [NA+NE-1:0] schedule [0:STEPS-1];
    initial $readmemh(SCHEDULE_FILE, schedule);

    reg [NE-1:0]     pending;  // engines of the step still to start
    reg [NE-1:0]     busy;     // engines started and not done
    wire [TW-1:0]    ahead = running ? step + 1'b1 : {TW{1'b0}};  // the next step
    wire [NA+NE-1:0] row = schedule[ahead];
    wire [NE-1:0]    left = (busy & ~done) | pending;  // not done after this cycle
    wire [NE-1:0]    can;      // WAIT allows the engine to start
    wire [NE-1:0]    next;     // ... and SWAIT: started this cycle
    wire [NE-1:0]    skip = next & SKIP & quiet;  // ... or skipped
    wire [NE-1:0]    started = next & ~skip;
    // the step's last cycle: nothing pending, busy or started after it
    wire             last = ((busy & ~done) | (pending & ~next) | started) == {NE{1'b0}};
    genvar k;

    generate
        for (k = 0; k < NE; k = k + 1) begin : g_wait
            assign can[k] = pending[k] && (WAIT[k*NE +: NE] & left) == {NE{1'b0}};
            assign next[k] = can[k] && (SWAIT[k*NE +: NE] & pending & ~can) == {NE{1'b0}};
        end
    endgenerate

    assign fresh = running ? last : go;

    always @(posedge clk) begin
        if (rst) begin
            running <= 1'b0;
            finish <= 1'b0;
            start <= {NE{1'b0}};
            active <= {NA{1'b0}};
            pending <= {NE{1'b0}};
            busy <= {NE{1'b0}};
            skipped <= {NE{1'b0}};
            step <= {TW{1'b0}};
            cycles <= 32'd0;
        end else begin
            finish <= 1'b0;
            start <= started;
            if (!running) begin
                if (go) begin  // step 0's row
                    running <= 1'b1;
                    step <= {TW{1'b0}};
                    active <= row[NA+NE-1:NE];
                    pending <= row[NE-1:0];
                    skipped <= {NE{1'b0}};
                    cycles <= 32'd0;
                end
            end else begin
                cycles <= cycles + 32'd1;
                if (!last) begin
                    pending <= pending & ~next;
                    busy <= (busy & ~done) | started;
                    skipped <= skipped | skip;
                end else if (step == LAST_STEP) begin
                    running <= 1'b0;
                    finish <= 1'b1;
                    pending <= {NE{1'b0}};
                    busy <= {NE{1'b0}};
                end else begin  // the next step's row
                    step <= ahead;
                    active <= row[NA+NE-1:NE];
                    pending <= row[NE-1:0];
                    busy <= {NE{1'b0}};
                    skipped <= {NE{1'b0}};
                end
            end
        end
    end
endmodule
