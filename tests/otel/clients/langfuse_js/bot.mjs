// A support bot instrumented with the Langfuse JS/TS SDK (the current major: @langfuse/tracing +
// @langfuse/otel's LangfuseSpanProcessor on @opentelemetry/sdk-node, @langfuse/client for
// scores), written the way Langfuse's READMEs teach. Nothing in it knows about chatmon: the test
// (tests/otel/test_langfuse_js.py) only sets LANGFUSE_BASE_URL, LANGFUSE_PUBLIC_KEY,
// LANGFUSE_SECRET_KEY and LANGFUSE_RELEASE. It prints the trace ids it made as JSON on stdout.
import { LangfuseClient } from "@langfuse/client";
import { LangfuseSpanProcessor } from "@langfuse/otel";
import {
  getActiveTraceId,
  observe,
  propagateAttributes,
  startActiveObservation,
  startObservation,
  updateActiveObservation,
} from "@langfuse/tracing";
import { NodeSDK } from "@opentelemetry/sdk-node";

const langfuseSpanProcessor = new LangfuseSpanProcessor();
const sdk = new NodeSDK({ spanProcessors: [langfuseSpanProcessor] });
sdk.start();
const langfuse = new LangfuseClient();

// The model: a fixed answer with the usage a provider would report (this bot tests the SDK's
// wire format, not a provider).
function callModel(question) {
  if (question.includes("order")) {
    return { answer: "Order 50231 shipped yesterday.", usage: { input: 18, output: 5 } };
  }
  return { answer: "We are open until 8 pm.", usage: { input: 11, output: 6 } };
}

// 1. Manual observations: a root span with a tool and a generation inside.
async function handleOrderQuestion(question) {
  return startActiveObservation("support-chat", async (span) => {
    span.update({ input: { question } });
    return propagateAttributes(
      { sessionId: "js-session", userId: "customer-js", tags: ["web", "js"], version: "bot-js-3" },
      async () => {
        const tool = startObservation("order-lookup", { input: { orderId: "50231" } }, { asType: "tool" });
        tool.update({ output: { status: "shipped" } });
        tool.end();

        const generation = startObservation(
          "answer",
          {
            model: "gpt-4o-mini",
            input: [
              { role: "system", content: "You are the shop's assistant." },
              { role: "user", content: question },
            ],
          },
          { asType: "generation" },
        );
        const { answer, usage } = callModel(question);
        generation.update({ output: { role: "assistant", content: answer }, usageDetails: usage });
        generation.end();

        span.update({ output: { answer } });
        return { traceId: getActiveTraceId(), answer };
      },
    );
  });
}

// 2. observe(): an existing function wrapped, its argument and return value captured.
const answerOpeningHours = observe(
  async (question) =>
    propagateAttributes({ sessionId: "js-session", userId: "customer-js" }, async () => {
      const generation = startObservation(
        "hours-answer",
        { model: "gpt-4o-mini", input: [{ role: "user", content: question }] },
        { asType: "generation" },
      );
      const { answer, usage } = callModel(question);
      generation.update({ output: { role: "assistant", content: answer }, usageDetails: usage });
      generation.end();
      updateActiveObservation({ metadata: { channel: "chat" } });
      return { traceId: getActiveTraceId(), answer };
    }),
  { name: "opening-hours" },
);

const order = await handleOrderQuestion("Where is my order 50231?");
const hours = await answerOpeningHours("When do you close today?");

// Spans first, so the scores find their traces (chatmon answers 503 while a trace is missing).
await langfuseSpanProcessor.forceFlush();

langfuse.score.create({ traceId: order.traceId, name: "user-feedback", value: 0, comment: "Too slow" });
langfuse.score.create({ traceId: hours.traceId, name: "user-feedback", value: 1 });
langfuse.score.create({ traceId: order.traceId, name: "helpfulness", value: 0.5, dataType: "NUMERIC" });
langfuse.score.create({ traceId: hours.traceId, name: "tone", value: "friendly", dataType: "CATEGORICAL" });
await langfuse.flush();
await langfuse.shutdown();
await sdk.shutdown();

process.stdout.write(JSON.stringify({ order, hours }) + "\n");
