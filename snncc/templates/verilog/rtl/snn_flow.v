// snn_flow: one engine's sequencer in a pipelined design (`--pipeline`). The engine runs
// its own time steps 0..STEPS-1 in order, each as soon as the design allows it, not in
// lock-step with the others: `ready` (computed in the top from the other sequencers'
// steps) says that every engine whose value it reads has finished step t and every
// engine reading its value has finished the step whose bank step t overwrites. A step
// the engine has no work at (`run` low, from its schedule) costs a cycle; a run is a
// start pulse and the wait for its done. `t` is the step it is at (STEPS when it has
// finished the inference, from reset until `go`).
module snn_flow #(
    parameter STEPS = 16,
    parameter TW    = 5      // step bits, for 0..STEPS
) (
    input  wire          clk,
    input  wire          rst,
    input  wire          go,
    input  wire          ready,
    input  wire          run,
    input  wire          done,
    output reg           start,
    output reg  [TW-1:0] t,
    output wire          finished
);
    localparam [TW-1:0] END = STEPS[TW-1:0];

    reg busy;

    assign finished = t == END;

    always @(posedge clk) begin
        start <= 1'b0;
        if (rst) begin
            busy <= 1'b0;
            t <= END;
        end else if (go) begin
            busy <= 1'b0;
            t <= {TW{1'b0}};
        end else if (busy) begin
            if (done) begin
                busy <= 1'b0;
                t <= t + 1'b1;
            end
        end else if (!finished) begin
            if (!run) begin
                t <= t + 1'b1;
            end else if (ready) begin
                start <= 1'b1;
                busy <= 1'b1;
            end
        end
    end
endmodule
