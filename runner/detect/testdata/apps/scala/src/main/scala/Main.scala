@main def hello(): Unit = println("hi")
