package mailstream.example;

import java.util.HashMap;
import java.util.List;
import java.util.Map;

/** Command-line flags, each {@code --name value}. */
record Flags(Map<String, String> values) {
  static Flags parse(String[] args) {
    if (args.length % 2 != 0) {
      throw new IllegalArgumentException("every flag needs a value");
    }
    Map<String, String> values = new HashMap<>();
    for (int i = 0; i < args.length; i += 2) {
      if (!args[i].startsWith("--")) {
        throw new IllegalArgumentException("expected --name, got " + args[i]);
      }
      values.put(args[i].substring(2), args[i + 1]);
    }
    return new Flags(values);
  }

  String get(String name) {
    String value = values.get(name);
    if (value == null) {
      throw new IllegalArgumentException("--" + name + " is required");
    }
    return value;
  }

  String get(String name, String fallback) {
    return values.getOrDefault(name, fallback);
  }

  /** A comma-separated list: {@code --to a@example.com,b@example.com}. */
  List<String> list(String name) {
    return List.of(get(name).split(","));
  }
}
