package mailstream.example;

import java.util.Arrays;

/**
 * A Java client of mailstream in two commands:
 *
 * <pre>
 * java -jar target/mailstream-example.jar send  --tenant acme --from hello@acme.example \
 *     --to you@example.com --template otp --data '{"code": "123456"}' --priority critical
 * java -jar target/mailstream-example.jar await --tenant acme --message-id ID --to you@example.com
 * </pre>
 *
 * Both take {@code --bootstrap-servers} (default the local stack's 127.0.0.1:19092) and
 * {@code --topic-prefix} (default none). {@code send} prints the message_id; {@code await}
 * prints the message's events and exits 0 only if every recipient was DELIVERED.
 */
public final class Main {
  /** sysexits.h's EX_USAGE: the command line was wrong. */
  private static final int USAGE = 64;

  private Main() {}

  public static void main(String[] args) throws Exception {
    int code;
    try {
      if (args.length == 0) {
        throw new IllegalArgumentException("a command is required: send or await");
      }
      Flags flags = Flags.parse(Arrays.copyOfRange(args, 1, args.length));
      code =
          switch (args[0]) {
            case "send" -> {
              System.out.println(SendTemplated.run(flags));
              yield 0;
            }
            case "await" -> AwaitEvents.run(flags);
            default -> throw new IllegalArgumentException("unknown command " + args[0]);
          };
    } catch (IllegalArgumentException e) {
      System.err.println("usage: (send | await) --name value ...: " + e.getMessage());
      code = USAGE;
    }
    System.exit(code);
  }
}
