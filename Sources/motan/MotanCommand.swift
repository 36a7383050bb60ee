import ArgumentParser

@main
struct MotanCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "motan",
        abstract: "A Motan2-compatible RPC transport on libuv: demo, server, client and load harness.",
        subcommands: [
            DemoCommand.self, ServeCommand.self, CallCommand.self, SwitchCommand.self, BenchCommand.self,
        ],
        defaultSubcommand: DemoCommand.self
    )
}
