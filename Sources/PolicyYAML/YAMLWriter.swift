import CYAML
import PolicyCore

/// Prints values as block-style YAML with the system libyaml's emitter.
///
/// Strings that a YAML reader would take for something else (`null`, `true`, `5`, `=`, `yes`) are
/// single-quoted, so the output reads back as the same value under YAML 1.1 and 1.2 readers alike.
public enum YAMLWriter {
    /// One YAML document holding `value`, ending in a newline.
    public static func document(_ value: Value) -> String {
        let emitter = Emitter()
        emitter.emitStreamStart()
        emitter.emitDocument(value, explicitStart: false)
        emitter.emitStreamEnd()
        return emitter.output
    }

    /// Several documents separated by `---`.
    public static func documents(_ values: [Value]) -> String {
        let emitter = Emitter()
        emitter.emitStreamStart()
        for (index, value) in values.enumerated() {
            emitter.emitDocument(value, explicitStart: index > 0)
        }
        emitter.emitStreamEnd()
        return emitter.output
    }

    /// Whether `text` must be quoted to read back as the same string.
    static func needsQuotes(_ text: String) -> Bool {
        if case .string = YAMLNode.resolve(text, style: .plain, tag: nil) {} else { return true }
        switch text {
        case "=", "y", "Y", "n", "N", "yes", "Yes", "YES", "no", "No", "NO", "on", "On", "ON", "off", "Off", "OFF",
             "<<":
            return true
        default:
            return false
        }
    }
}

/// Owns one libyaml emitter and the text it produced.
private final class Emitter {
    private var emitter = yaml_emitter_t()
    private var bytes: [UInt8] = []

    init() {
        yaml_emitter_initialize(&emitter)
        yaml_emitter_set_unicode(&emitter, 1)
        yaml_emitter_set_width(&emitter, -1)
        yaml_emitter_set_indent(&emitter, 2)
        yaml_emitter_set_output(&emitter, { data, buffer, size in
            guard let data, let buffer else { return 0 }
            let sink = Unmanaged<Emitter>.fromOpaque(data).takeUnretainedValue()
            sink.bytes.append(contentsOf: UnsafeBufferPointer(start: buffer, count: size))
            return 1
        }, Unmanaged.passUnretained(self).toOpaque())
    }

    deinit { yaml_emitter_delete(&emitter) }

    var output: String { String(decoding: bytes, as: UTF8.self) }

    private func emit(_ event: inout yaml_event_t) {
        // The emitter only fails on malformed event sequences, which this class never builds.
        _ = yaml_emitter_emit(&emitter, &event)
    }

    func emitStreamStart() {
        var event = yaml_event_t()
        yaml_stream_start_event_initialize(&event, YAML_UTF8_ENCODING)
        emit(&event)
    }

    func emitStreamEnd() {
        var event = yaml_event_t()
        yaml_stream_end_event_initialize(&event)
        emit(&event)
        yaml_emitter_flush(&emitter)
    }

    func emitDocument(_ value: Value, explicitStart: Bool) {
        var event = yaml_event_t()
        yaml_document_start_event_initialize(&event, nil, nil, nil, explicitStart ? 0 : 1)
        emit(&event)
        emitValue(value)
        yaml_document_end_event_initialize(&event, 1)
        emit(&event)
    }

    private func scalar(_ text: String, style: yaml_scalar_style_t) {
        var event = yaml_event_t()
        var utf8 = Array(text.utf8)
        let length = Int32(clamping: utf8.count)
        utf8.append(0)  // never empty, so the buffer always has a base address
        utf8.withUnsafeMutableBufferPointer { buffer in
            if let base = buffer.baseAddress {
                _ = yaml_scalar_event_initialize(&event, nil, nil, base, length, 1, 1, style)
            }
        }
        emit(&event)
    }

    private func emitValue(_ value: Value) {
        var event = yaml_event_t()
        switch value {
        case .null: scalar("null", style: YAML_PLAIN_SCALAR_STYLE)
        case .bool(let b): scalar(b ? "true" : "false", style: YAML_PLAIN_SCALAR_STYLE)
        case .int(let i): scalar(String(i), style: YAML_PLAIN_SCALAR_STYLE)
        case .number(let n): scalar(n, style: YAML_PLAIN_SCALAR_STYLE)
        case .string(let s):
            scalar(s, style: YAMLWriter.needsQuotes(s) ? YAML_SINGLE_QUOTED_SCALAR_STYLE : YAML_ANY_SCALAR_STYLE)
        case .list(let items):
            yaml_sequence_start_event_initialize(&event, nil, nil, 1, YAML_BLOCK_SEQUENCE_STYLE)
            emit(&event)
            for item in items { emitValue(item) }
            yaml_sequence_end_event_initialize(&event)
            emit(&event)
        case .map(let entries):
            yaml_mapping_start_event_initialize(&event, nil, nil, 1, YAML_BLOCK_MAPPING_STYLE)
            emit(&event)
            for entry in entries {
                scalar(entry.key, style: YAMLWriter.needsQuotes(entry.key) ? YAML_SINGLE_QUOTED_SCALAR_STYLE
                                                                           : YAML_ANY_SCALAR_STYLE)
                emitValue(entry.value)
            }
            yaml_mapping_end_event_initialize(&event)
            emit(&event)
        }
    }
}
