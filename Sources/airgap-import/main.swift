import AirgapCLI

await CommandRunner.main(ImportRoot.self)
