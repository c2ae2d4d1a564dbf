// snn_flow: one engine's sequencer in a pipelined design (`--pipeline`). The engine runs
// its own time steps 0..STEPS-1 of inference after inference, each step as soon as the
// design allows it, not in lock-step with the others: `ready` (computed in the top from
// the other sequencers' positions) says that every engine whose value it reads has
// finished this step and every engine reading its value has finished the step whose
// bank this one overwrites. A step the engine has no work at (`run` low, from its
// schedule) costs a cycle; a run is a start pulse and the wait for its done. `n` counts
// the inferences (modulo 2^IW), `t` is the step within the current one. Before step 0
// of an inference it waits for `avail` (its input loaded; the readout: the previous
// logits sent), then pulses `clear` (the engine forgets its state: a lazy reset).
// `advance` is high in the cycle whose edge moves it to the next step.
module snn_flow #(
    parameter STEPS = 16,
    parameter TW    = 5,     // step bits
    parameter IW    = 4      // inference counter bits
) (
    input  wire          clk,
    input  wire          rst,
    input  wire          avail,
    input  wire          ready,
    input  wire          run,
    input  wire          done,
    output reg           start,
    output reg           clear,
    output reg  [TW-1:0] t,
    output reg  [IW-1:0] n,
    output wire          advance
);
    localparam integer LAST_I = STEPS - 1;
    localparam [TW-1:0] LAST = LAST_I[TW-1:0];

    reg busy;
    reg open;    // the inference has begun (its input is there)

    assign advance = open && (busy ? done : !run);

    always @(posedge clk) begin
        start <= 1'b0;
        clear <= 1'b0;
        if (rst) begin
            busy <= 1'b0;
            open <= 1'b0;
            t <= {TW{1'b0}};
            n <= {IW{1'b0}};
        end else if (!open) begin
            if (avail) begin
                open <= 1'b1;
                clear <= 1'b1;
            end
        end else if (advance) begin
            busy <= 1'b0;
            if (t == LAST) begin
                t <= {TW{1'b0}};
                n <= n + 1'b1;
                open <= 1'b0;
            end else begin
                t <= t + 1'b1;
            end
        end else if (!busy && ready) begin
            start <= 1'b1;
            busy <= 1'b1;
        end
    end
endmodule
