import AirgapCLI

await CommandRunner.main(ExportRoot.self)
