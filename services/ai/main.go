// Command ai is Perpetua Flow's AI service: streamed chat with suggested actions, subtask
// suggestions, note-to-task conversion and voice transcription, paid for with credits
// reserved from billing before each provider call and refunded when the call fails.
// `ai migrate` applies the migrations and exits.
package main

import "github.com/perpetua-flow/backend/libs/svc"

func main() { svc.Main("ai", Run, Migrate) }
