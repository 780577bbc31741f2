import 'dart:io';
import 'package:shelf/shelf_io.dart' as io;

void main() async {
  final port = int.parse(Platform.environment['PORT'] ?? '8080');
  await io.serve((req) => throw UnimplementedError(), InternetAddress.anyIPv4, port);
}
